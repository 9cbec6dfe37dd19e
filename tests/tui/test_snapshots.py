"""Snapshots of every screen at 80×24 and 160×48 (pytest-textual-snapshot), from the pinned fake
source: the clock, ids and telemetry are fixed, so a change in the picture is a change in the
app. Textual is pinned exactly in the dev extra so releases do not move them.

Look at a failure's report (snapshot_report.html), then accept a deliberate change with
``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from edge_runner_tui.app import create_app
from edge_runner_tui.screens.logs import LogsView
from tests.fakes.dashboard import FakeSource
from tests.tui.conftest import loaded

SIZES = [(80, 24), (160, 48)]
#: enough samples for the history charts to have a shape
SAMPLES = 12


def _app(source: FakeSource) -> Any:
    app = create_app(source, poll=False)
    app.animation_level = "none"
    return app


async def _fill(pilot: Pilot[Any], source: FakeSource) -> None:
    for _ in range(SAMPLES):
        await loaded(pilot)
    pilot.app.query_one(LogsView).add(source.logs, "the local runner")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    "key",
    ["1", "2", "3", "4", "5", "6"],
    ids=["overview", "contexts", "runners", "tasks", "logs", "gpu"],
)
def test_screen(snap_compare: Any, key: str, size: tuple[int, int]) -> None:
    """Each screen with one runner machine's worth of data (two GPUs)."""
    source = FakeSource(gpu_count=2)

    async def before(pilot: Pilot[Any]) -> None:
        await _fill(pilot, source)
        await pilot.press(key)
        await pilot.pause()

    assert snap_compare(_app(source), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_outage_banner(snap_compare: Any, size: tuple[int, int]) -> None:
    """Control plane and daemon down: the banner over the overview."""
    source = FakeSource(
        gpu_count=0,
        control_error="cannot reach the control plane at http://127.0.0.1:7070 (refused)",
        local_error="no runner runs on this machine (start one with `edge-runner up` or "
        "`edge-runner runner PATH`)",
    )

    async def before(pilot: Pilot[Any]) -> None:
        await _fill(pilot, source)

    assert snap_compare(_app(source), terminal_size=size, run_before=before)


def test_eight_gpus(snap_compare: Any) -> None:
    """Eight GPUs in two columns on a big terminal."""
    source = FakeSource(gpu_count=8)

    async def before(pilot: Pilot[Any]) -> None:
        await _fill(pilot, source)
        await pilot.press("6")
        await pilot.pause()

    assert snap_compare(_app(source), terminal_size=(160, 48), run_before=before)


def test_help(snap_compare: Any) -> None:
    """The key help at 80×24."""

    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(_app(FakeSource()), run_before=before)
