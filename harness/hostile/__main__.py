"""``python -m flowgate.harness.hostile [list|markdown] [--markdown] [--write]``."""

import sys

from flowgate.harness.hostile.cli import main

sys.exit(main())
