"""The kit's time unit."""

from __future__ import annotations

import os

__all__ = ["MS"]

#: one millisecond, times ``TIMEOUT_FACTOR`` (a slow machine sets it above 1): every wait in
#: the kit, and in edge-runner's own suite, is written in this unit
MS = 0.001 * float(os.environ.get("TIMEOUT_FACTOR", 1))
