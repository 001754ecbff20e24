"""Entry point: `streamlit run ui/app.py` (from the repository root). Streamlit puts ui/ on the
path, so the root is added here for `import ui` and `import harclip`; `ui.shell` does the rest."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ui import shell  # noqa: E402

shell.main()
