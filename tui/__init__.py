"""The edge-runner dashboard (Textual): contexts, runners, tasks, logs and GPUs, live.

It is a client: it reads the local runner's API and the active context's control plane
through edge-runner's clients, and never runs a daemon in-process. ``edge-runner dashboard`` or
``python -m edge_runner_tui``; build it for tests with :func:`edge_runner_tui.app.create_app`.

The sources live in the repository's ``tui/`` folder, but the package installs as
``edge_runner_tui`` (``setup.py`` maps it), never as a bare ``tui`` that would collide with
another project's; its own modules import each other relatively, so they work under either.
"""

from __future__ import annotations

__all__: list[str] = []
