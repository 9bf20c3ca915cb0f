"""``python -m bots`` is ``kamiya-bot``."""

from __future__ import annotations

import sys

from bots.cli import main

sys.exit(main())
