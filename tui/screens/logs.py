"""Logs: a live tail of a runner's logs (5,000 lines kept), filtered by level and text.

``/`` filters by text, ``e`` cycles the lowest level shown, ``p`` pauses (records keep
arriving), ``f`` follows again, ``w`` writes what is shown to a file.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Input, RichLog, Static

from edge_runner.views import LogRecordView

__all__ = ["CAPACITY", "LogsView"]

CAPACITY = 5_000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RANK = {name: i for i, name in enumerate(LEVELS)} | {"CRITICAL": 4}
_STYLE = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red", "DEBUG": "dim"}


def line(record: LogRecordView) -> Text:
    """One record as a coloured line."""
    stamp = time.strftime("%H:%M:%S", time.localtime(float(record["time"])))
    level = str(record["level"])
    task = f" [{record['task_id'][:12]}]" if record.get("task_id") else ""
    text = Text(f"{stamp} ")
    text.append(f"{level:<7}", style=_STYLE.get(level, ""))
    text.append(f" {record['logger']}{task}: {record['message']}")
    return text


class LogsView(Widget):
    """The log tail."""

    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("e", "level", "Level"),
        Binding("p", "pause", "Pause"),
        Binding("f", "follow", "Follow"),
        Binding("w", "save", "Save"),
    ]

    def __init__(self) -> None:
        super().__init__(id="logs")
        self.records: deque[LogRecordView] = deque(maxlen=CAPACITY)
        self.level = 0
        self.text = ""
        self.paused = False
        self.source = "none yet"
        self.error = ""
        self.saved_to: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="logs-status", classes="hint")
        yield Input(placeholder="filter text (Enter to apply, Esc to close)", id="logs-filter")
        yield RichLog(max_lines=CAPACITY, id="logs-log", wrap=False, auto_scroll=True)

    def on_mount(self) -> None:
        """Start with the filter box hidden."""
        self.query_one("#logs-filter", Input).display = False
        self._status()

    def _wanted(self, record: LogRecordView) -> bool:
        if _RANK.get(str(record["level"]), 1) < self.level:
            return False
        return not self.text or self.text in f"{record['logger']} {record['message']}".lower()

    def add(self, records: list[LogRecordView], source: str, error: str = "") -> None:
        """Take new records (shown unless paused); ``error``: the stream is down, retrying."""
        if source != self.source or error != self.error:
            self.source = source
            self.error = error
            self._status()
        self.records.extend(records)
        if self.paused:
            return
        log = self.query_one(RichLog)
        # a burst larger than the buffer: only its tail would survive, so draw only that
        for record in records[-CAPACITY:]:
            if self._wanted(record):
                log.write(line(record))

    def reset(self, source: str) -> None:
        """Start over for another runner's logs."""
        self.records.clear()
        self.source = source
        self.error = ""
        self.query_one(RichLog).clear()
        self._status()

    def shown(self) -> list[LogRecordView]:
        """The kept records that pass the filters."""
        return [r for r in self.records if self._wanted(r)]

    def _redraw(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        for record in self.shown():
            log.write(line(record))
        self._status()

    def _status(self) -> None:
        state = "PAUSED" if self.paused else "following"
        text = f'  text "{self.text}"' if self.text else ""
        if self.error:
            state = f"DOWN ({self.error}), retrying"
        self.query_one("#logs-status", Static).update(
            escape(
                f"logs of {self.source}: {state}, level {LEVELS[min(self.level, 3)]}+{text}   "
                "/: filter  e: level  p: pause  f: follow  w: save"
            )
        )

    def action_filter(self) -> None:
        """Show the filter box."""
        box = self.query_one("#logs-filter", Input)
        box.display = True
        box.value = self.text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the text filter."""
        self.text = event.value.strip().lower()
        event.input.display = False
        self.query_one(RichLog).focus()
        self._redraw()

    def action_level(self) -> None:
        """Raise the lowest level shown (and wrap around)."""
        self.level = (self.level + 1) % len(LEVELS)
        self._redraw()

    def action_pause(self) -> None:
        """Stop the display moving; records keep arriving."""
        self.paused = True
        self._status()

    def action_follow(self) -> None:
        """Show everything that arrived and follow again."""
        self.paused = False
        self._redraw()
        self.query_one(RichLog).scroll_end(animate=False)

    def action_save(self) -> None:
        """Write the shown records to a file in the current folder."""
        path = Path.cwd() / f"edge-runner-logs-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path.write_text("".join(line(r).plain + "\n" for r in self.shown()), encoding="utf-8")
        self.saved_to = path
        self.app.notify(f"wrote {len(self.shown())} lines to {path}")
