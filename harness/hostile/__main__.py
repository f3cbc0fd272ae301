"""``python -m harness.hostile [list|markdown] [--markdown] [--write]``."""

import sys

from harness.hostile.cli import main

sys.exit(main())
