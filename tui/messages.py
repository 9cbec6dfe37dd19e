"""Messages the workers post to the app (data comes in off the UI thread)."""

from __future__ import annotations

from textual.message import Message

from edge_runner.views import ContextView, LogRecordView

from .data import ControlView, GpuView, LocalView

__all__ = ["ContextsLoaded", "GpuSampled", "LogRecords", "Refreshed"]


class Refreshed(Message):
    """A refresh of the tables: the control plane and the local runner."""

    def __init__(self, control: ControlView, local: LocalView, now: float) -> None:
        super().__init__()
        self.plane = control  # not ``control``: Message.control is Textual's
        self.local = local
        self.now = now


class GpuSampled(Message):
    """A GPU sample; a newer one replaces an older one still queued."""

    def __init__(self, view: GpuView) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        """Only the latest sample matters."""
        return isinstance(message, GpuSampled)


class LogRecords(Message):
    """Log records that arrived (batched by the log worker), or why the stream stopped."""

    def __init__(self, records: list[LogRecordView], source: str, error: str = "") -> None:
        super().__init__()
        self.records = records
        self.source = source
        self.error = error


class ContextsLoaded(Message):
    """The contexts, with whether each control plane answered."""

    def __init__(self, records: list[ContextView]) -> None:
        super().__init__()
        self.records = records
