"""Model folders for tests, written from a few lines of Python."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_model"]


def write_model(root: Path, model_id: str, body: str, *, imports: str = "") -> Path:
    """Write a model folder ``root/model_id`` whose ``1/model.py`` has ``body`` (indented four
    spaces) as the class body of ``Model(ModelClass)``; ``threading``, ``time`` and ``Iterator``
    are imported, and ``imports`` adds more lines.

    Returns:
        The folder, ready for :meth:`Stack.start_runner` or ``edge-runner runner``.
    """
    folder = root / model_id
    (folder / "1").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"model:\n  id: {model_id}\n  user_id: local\n  app_id: local\n"
    )
    source = (
        "from __future__ import annotations\n"
        "import threading, time\n"
        "from collections.abc import Iterator\n"
        f"{imports}\n"
        "from edge_runner import ModelClass\n\n\n"
        "class Model(ModelClass):\n" + body
    )
    (folder / "1" / "model.py").write_text(source)
    return folder
