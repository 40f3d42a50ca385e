from sardana_redis.cli import main

raise SystemExit(main())
