"""The control plane: HTTP API, tunnel endpoints, dispatch and the registry.

Never imports :mod:`edge_runner.runner`; the two sides meet only through the tunnel protocol.
Importing the package loads nothing heavy: :class:`ControlPlane` (and with it the web server)
is imported when first named, so a process that only builds a :class:`ControlConfig` (``up``
checking its options) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_runner.control.config import ControlConfig, build_control

if TYPE_CHECKING:
    from edge_runner.control.server import ControlPlane

__all__ = ["ControlConfig", "ControlPlane", "build_control"]


def __getattr__(name: str) -> object:
    if name == "ControlPlane":
        from edge_runner.control.server import ControlPlane

        return ControlPlane
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
