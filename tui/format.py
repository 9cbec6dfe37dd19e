"""Small formatting helpers shared by the views."""

from __future__ import annotations

from typing import Any

__all__ = ["ago", "gib", "percent", "set_text", "short"]


def ago(seconds: float | None) -> str:
    """``12 s``, ``5 min``, ``3 h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def gib(n: float | None) -> str:
    """Bytes as GiB with one decimal; ``-`` when unknown."""
    return "-" if n is None else f"{n / 2**30:.1f}"


def percent(value: float | None) -> str:
    """``42 %``, or ``-``."""
    return "-" if value is None else f"{float(value):.0f} %"


def short(text: object, width: int) -> str:
    """``text`` cut to ``width`` with an ellipsis."""
    text = str(text)
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def set_text(widget: Any, text: str, *, layout: bool = True) -> None:
    """``widget.update(text)`` only when it changed: most refreshes change nothing, and an
    update repaints (with ``layout``, re-lays out the screen too)."""
    if getattr(widget, "_shown_text", None) != text:
        widget._shown_text = text
        widget.update(text, layout=layout)
