"""The edge-runner dashboard (Textual): contexts, runners, tasks, logs and GPUs, live.

It is a client: it reads the local runner's API and the active context's control plane
through edge-runner's clients, and never runs a daemon in-process. ``python -m tui`` or
``edge-runner dashboard``; build it for tests with :func:`tui.app.create_app`.
"""

from __future__ import annotations

__all__: list[str] = []
