import sys

from berth.registry.server.cli import main

sys.exit(main())
