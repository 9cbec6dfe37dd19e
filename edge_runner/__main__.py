"""``python -m edge_runner`` is the ``edge-runner`` command."""

from __future__ import annotations

from edge_runner.cli.main import main

raise SystemExit(main())
