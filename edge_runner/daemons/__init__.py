"""The daemons, assembled from config objects: the one place that wires a control plane or a
runner together, for the CLI, ``up``, :mod:`edge_runner.testing` and the benches alike.

    from edge_runner.daemons import ControlConfig, RunnerConfig, build_control, build_runner

Nothing here parses arguments: the CLI turns its options into a config and hands it over.
"""

from __future__ import annotations

from edge_runner.backends.source import ModelSource
from edge_runner.control.config import ControlConfig, build_control
from edge_runner.daemons.control import serve_control
from edge_runner.daemons.runner import RunnerConfig, RunnerDaemon, build_runner

__all__ = [
    "ControlConfig",
    "ModelSource",
    "RunnerConfig",
    "RunnerDaemon",
    "build_control",
    "build_runner",
    "serve_control",
]
