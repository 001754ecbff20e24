import sys

from harclip.cli import main

sys.exit(main())
