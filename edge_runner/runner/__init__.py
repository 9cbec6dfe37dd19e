"""The runner daemon: dials out to a control plane and executes its tasks.

Never imports :mod:`edge_runner.control`; the two sides meet only through the tunnel protocol.
"""

from __future__ import annotations

from edge_runner.runner.daemon import Runner, RunnerSettings

__all__ = ["Runner", "RunnerSettings"]
