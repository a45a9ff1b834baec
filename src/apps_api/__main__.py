from apps_api.cli import main

raise SystemExit(main())
