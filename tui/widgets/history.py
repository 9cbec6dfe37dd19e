"""A one-line history chart on a fixed scale: newest sample on the right, one cell each.

Textual's Sparkline rescales to its data's own min and max, which draws a flat 0.6 GiB as
towering bars; a monitor wants a fixed scale (0-100 %, 0 to the power limit).
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widget import Widget

__all__ = ["BLOCKS", "History"]

BLOCKS = " ▁▂▃▄▅▆▇█"


class History(Widget):
    """The last samples as bars from 0 to ``maximum`` (None: the largest sample, at least 1).

    Args:
        capacity: samples kept (the widest the chart can be).
        maximum: the value of a full bar.
    """

    DEFAULT_CSS = """
    History {
        height: 1;
        width: 1fr;
        color: $primary;
    }
    """

    def __init__(
        self,
        capacity: int = 300,
        maximum: float | None = 100.0,
        *,
        id: str | None = None,  # noqa: A002 - Textual's name
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.values: deque[float | None] = deque(maxlen=capacity)
        self.maximum = maximum

    def push(self, value: float | None) -> None:
        """Add a sample (None: unknown, drawn as a gap) and redraw."""
        self.values.append(value)
        self.refresh()

    def bars(self, width: int) -> str:
        """The chart as ``width`` characters."""
        recent = list(self.values)[-width:] if width > 0 else []
        known = [v for v in recent if v is not None]
        top = self.maximum if self.maximum else max([1.0, *known])
        cells = []
        for value in recent:
            if value is None:
                cells.append(" ")
                continue
            share = min(max(value / top, 0.0), 1.0)
            # zero is the baseline ▁, so an idle series still shows it is being sampled
            cells.append(BLOCKS[1 + round(share * (len(BLOCKS) - 2))])
        return " " * (width - len(cells)) + "".join(cells)

    def render(self) -> Text:
        """Draw at the current width."""
        return Text(self.bars(self.size.width))
