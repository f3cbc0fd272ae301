"""``python -m harness.simulation`` = ``flowgate sim``."""

import sys

from harness.simulation.cli import main

sys.exit(main())
