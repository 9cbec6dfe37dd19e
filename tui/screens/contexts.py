"""Contexts: every control plane this machine knows; Enter makes one active, n adds one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from edge_runner.views import ContextView

from ..widgets.table import LiveTable

__all__ = ["ContextsView"]


class ContextsView(Widget):
    """The contexts table."""

    BINDINGS = [Binding("n", "new", "New context")]
    #: Enter is the table's own key (RowSelected); listed for the help screen
    EXTRA_KEYS = [("enter", "make the context active")]

    def __init__(self) -> None:
        super().__init__(id="contexts")

    def compose(self) -> ComposeResult:
        yield Static("Enter: make active   n: new context", classes="hint")
        yield LiveTable(
            ("", "NAME", "API BASE", "USER", "TOKEN", "REACHABLE"),
            id="contexts-table",
            sort_column=1,
        )

    def show(self, records: list[ContextView]) -> None:
        """Take the contexts."""
        rows = [
            (
                r["name"],
                (
                    "*" if r.get("active") else "",
                    r["name"],
                    r["api_base"],
                    r["user_id"],
                    r.get("token") or "-",
                    _reachable(r.get("reachable")),
                ),
            )
            for r in records
        ]
        self.query_one(LiveTable).show(rows)

    def on_data_table_row_selected(self, event: LiveTable.RowSelected) -> None:
        """Enter makes the selected context active."""
        event.stop()
        self.app.use_context(str(event.row_key.value))  # type: ignore[attr-defined]

    def action_new(self) -> None:
        """Open the form for a new context."""
        self.app.new_context()  # type: ignore[attr-defined]


def _reachable(value: object) -> str:
    if value is None:
        return "?"
    return "yes" if value else "NO"
