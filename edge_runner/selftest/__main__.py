"""``python -m edge_runner.selftest``."""

from __future__ import annotations

import sys

from edge_runner.selftest import main

sys.exit(main())
