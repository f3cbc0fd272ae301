import sys

from flowgate.harness.gate.cli import main

sys.exit(main())
