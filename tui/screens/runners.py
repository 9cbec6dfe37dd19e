"""Runners: every runner of the control plane; Enter shows one, d drains it, l its logs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from edge_runner.telemetry.gpu import gpu_share
from edge_runner.views import RunnerGpuView, RunnerView

from ..format import ago
from ..widgets.table import LiveTable

__all__ = ["RunnersView", "gpus_text"]


def gpus_text(gpus: list[RunnerGpuView]) -> str:
    """``1/8 55 %``: the runner's GPUs of its machine's, and their mean utilisation."""
    if not gpus:
        return "-"
    mine, total, util = gpu_share(gpus)
    load = f" {util:.0f} %" if util is not None else ""
    return f"{mine}/{total}{load}"


class RunnersView(Widget):
    """The runners table."""

    BINDINGS = [
        Binding("d", "drain", "Drain"),
        Binding("s", "sort", "Sort"),
        Binding("l", "logs", "Logs"),
    ]
    #: Enter is the table's own key (RowSelected); listed for the help screen
    EXTRA_KEYS = [("enter", "the runner's detail")]

    def __init__(self) -> None:
        super().__init__(id="runners")
        self.runners: dict[str, RunnerView] = {}

    def compose(self) -> ComposeResult:
        yield Static("Enter: detail   d: drain   s: sort   l: its logs", classes="hint")
        yield LiveTable(
            ("RUNNER", "HOST", "STATUS", "NODEPOOL", "MODELS", "BUSY", "GPUS", "SEEN"),
            id="runners-table",
        )

    def show(self, runners: list[RunnerView], now: float) -> None:
        """Take the runners."""
        self.runners = {r["id"]: r for r in runners}
        rows = [
            (
                r["id"],
                (
                    r["id"],
                    r.get("hostname", ""),
                    r.get("status", "?"),
                    r.get("nodepool", ""),
                    ", ".join(r.get("models", [])),
                    f"{r.get('busy', 0)}/{r.get('pool_size', 0)}",
                    gpus_text(r.get("gpus") or []),
                    ago(now - float(r.get("last_seen", now))),
                ),
            )
            for r in runners
        ]
        self.query_one(LiveTable).show(rows)

    def _selected(self) -> RunnerView | None:
        key = self.query_one(LiveTable).selected_key
        return self.runners.get(key) if key is not None else None

    def on_data_table_row_selected(self, event: LiveTable.RowSelected) -> None:
        """Enter shows everything about the selected runner."""
        event.stop()
        runner = self.runners.get(str(event.row_key.value))
        if runner is not None:
            self.app.show_runner(runner)  # type: ignore[attr-defined]

    def action_drain(self) -> None:
        """Drain the selected runner (confirmed; needs actions on)."""
        runner = self._selected()
        if runner is not None:
            self.app.drain(runner["id"])  # type: ignore[attr-defined]

    def action_sort(self) -> None:
        """Sort by the next column."""
        self.app.notify(self.query_one(LiveTable).cycle_sort())

    def action_logs(self) -> None:
        """Show the selected runner's logs (from the control plane)."""
        runner = self._selected()
        if runner is not None:
            self.app.follow_runner_logs(runner["id"])  # type: ignore[attr-defined]
