"""``python -m flowgate.harness.simulation`` = ``flowgate sim``."""

import sys

from flowgate.harness.simulation.cli import main

sys.exit(main())
