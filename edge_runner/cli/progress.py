"""Model download and load progress for a person at a terminal.

On a terminal one line is redrawn in place (``llama3.2 [#####.....] 42 % ...``); elsewhere (a
log file, CI) a line is printed when a model's state changes and at every 25 %. Fed either with
the backend's ``ModelStatus`` (``edge-runner runner``) or with the control plane's model view
(``edge-runner up``, which polls ``/v2/models``).
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import ModelView

__all__ = ["ProgressDisplay"]

_BAR = 24
_STATES = {pb.LOADING: "loading", pb.READY: "online", pb.UNAVAILABLE: "unavailable"}


class ProgressDisplay:
    """Shows models getting ready; thread-safe (statuses come from the backend's thread)."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, int]] = {}
        self._drawn = False

    def status(self, status: pb.ModelStatus) -> None:
        """A backend status listener."""
        state = "failed" if status.state == pb.FAILED else _STATES.get(status.state, "loading")
        self.update(status.model_id, state, status.progress, status.message)

    def view(self, model: ModelView) -> None:
        """A model from ``GET /v2/models``."""
        self.update(
            str(model.get("id")),
            str(model.get("status", "")),
            float(model.get("progress") or 0.0),
            str(model.get("message") or ""),
        )

    def update(self, model_id: str, state: str, progress: float, message: str) -> None:
        """Show one model's state; repeated calls with nothing new print nothing."""
        quarter = int(progress * 4) if state == "loading" else -1
        with self._lock:
            previous = self._last.get(model_id)
            self._last[model_id] = (state, quarter)
            if state == "loading" and self.tty:
                self._draw(model_id, progress, message)
                return
            if previous == (state, quarter) or (previous is None and state == "online"):
                return
            self._end_line()
            text = (
                f"{model_id} is ready" if state == "online" else message or f"{model_id} is {state}"
            )
            self.stream.write(f"{text}\n")
            self.stream.flush()

    def _draw(self, model_id: str, progress: float, message: str) -> None:
        filled = int(progress * _BAR)
        bar = f"[{'#' * filled}{'.' * (_BAR - filled)}]" if progress > 0 else ""
        text = message or f"{model_id} is loading"
        self.stream.write("\r\x1b[K" + " ".join(part for part in (bar, text) if part))
        self.stream.flush()
        self._drawn = True

    def _end_line(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False

    def close(self) -> None:
        """End a line left half-drawn."""
        with self._lock:
            self._end_line()
            self.stream.flush()
