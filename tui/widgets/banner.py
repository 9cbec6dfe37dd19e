"""The banner under the header: what is down and what to run; it hides once all is well."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from ..data import ControlView, LocalView

__all__ = ["Banner", "banner_lines"]


def banner_lines(control: ControlView, local: LocalView) -> list[str]:
    """One line per problem, each saying what to run; empty when all is well."""
    lines = []
    if not control.reachable:
        where = f" ({control.api_base})" if control.api_base else ""
        lines.append(
            f"control plane of context {control.context!r}{where} unreachable: {control.error}. "
            "Start one here with `edge-runner up`, or pick another context (key 2)."
        )
    if local.snapshot is None and local.error:
        lines.append(f"local runner: {local.error}")
    return lines


class Banner(Static):
    """Red when something is down; hidden otherwise. Recovers on the next good refresh."""

    def __init__(self) -> None:
        super().__init__("", id="banner")
        self.lines: list[str] = []

    def on_mount(self) -> None:
        """Hidden until there is a problem."""
        self.display = False

    def show(self, control: ControlView, local: LocalView) -> None:
        """Take a refresh."""
        self.lines = banner_lines(control, local)
        self.display = bool(self.lines)
        self.update("\n".join(f"⚠ {escape(line)}" for line in self.lines))
