from plugin_di.cli import main

raise SystemExit(main())
