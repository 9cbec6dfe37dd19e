"""Helpers of the dashboard tests: run an app headless, wait for a condition on the UI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.conftest import MS

pytest.importorskip("textual")

from textual.pilot import Pilot  # noqa: E402

from edge_runner_tui.app import DashboardApp  # noqa: E402


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Log times render in UTC, so snapshots do not depend on the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def drive(
    app: DashboardApp,
    scenario: Callable[[Pilot[None]], Awaitable[None]],
    size: tuple[int, int] = (80, 24),
) -> None:
    """Run ``app`` headless at ``size`` and play ``scenario`` against it (no animations: a
    pilot's key press waits for them, and they show nothing a test checks)."""
    app.animation_level = "none"

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def until(
    pilot: Pilot[Any], condition: Callable[[], object], what: str, within: float = 10_000 * MS
) -> None:
    """Let the app run until ``condition`` holds; fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.1f} s waiting for {what}")
        await pilot.pause(5 * MS)


async def loaded(pilot: Pilot[Any]) -> None:
    """Read the source once and let every message land (apps built with ``poll=False``)."""
    app = pilot.app
    assert isinstance(app, DashboardApp)
    before = app.last_refresh
    await app.poll_once()
    await until(pilot, lambda: app.last_refresh is not before, "the refresh to land")
    await pilot.pause()
    await pilot.pause()


def plain(widget: Any) -> str:
    """The text a Static shows, without markup."""
    visual = widget.visual
    return str(getattr(visual, "plain", visual))


def log_text(log: Any) -> str:
    """The lines a RichLog holds, as text."""
    return "\n".join("".join(segment.text for segment in strip) for strip in log.lines)
