from api.app import main

raise SystemExit(main())
