"""The control plane: HTTP API, tunnel endpoints, dispatch and the registry.

Never imports :mod:`edge_runner.runner`; the two sides meet only through the tunnel protocol.
"""

from __future__ import annotations

from edge_runner.control.server import ControlPlane, ControlSettings

__all__ = ["ControlPlane", "ControlSettings"]
