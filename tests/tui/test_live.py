"""The dashboard against a real control plane and runner (the integration fixtures), through
edge-runner's own clients and real sockets: every screen fills from live data and the actions
reach the control plane. GPUs come from recorded NVML answers, read by the runner's sampler.
"""

from __future__ import annotations

import fcntl
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, RichLog

from edge_runner.client import Client
from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.paths import runner_file, runtime_dir
from edge_runner.config.secrets import secret_store
from edge_runner.errors import EdgeRunnerError
from edge_runner.runner.events import LogBuffer
from edge_runner.runner.local_api import LocalApi
from edge_runner.telemetry import GpuReader, Sampler
from edge_runner_tui.app import DashboardApp, create_app
from edge_runner_tui.data import LiveSource
from edge_runner_tui.screens.gpu import GpuPanel
from edge_runner_tui.screens.modals import ConfirmScreen, ContextForm
from edge_runner_tui.widgets.banner import Banner
from edge_runner_tui.widgets.table import LiveTable
from tests.conftest import MS, SLOW_MODEL, RunningRunner, Stack, write_model
from tests.fakes.nvml import FakeNvml
from tests.tui.conftest import drive, log_text, plain, until


@pytest.fixture
def live(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRunner]:
    """A control plane, a runner of a slow model with a (recorded-NVML) sampler and its local
    API where the dashboard looks for it, and the `local` context pointing at them."""
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml.load("one_gpu"))  # type: ignore[arg-type]
    folder = write_model(tmp_path, "slow", SLOW_MODEL)
    running = stack.start_runner(folder, sampler=Sampler(GpuReader(), interval=50 * MS))
    logs = LogBuffer(running.runner.hub)
    logging.getLogger("edge_runner").addHandler(logs)
    runtime = runtime_dir()
    runtime.mkdir(parents=True, mode=0o700, exist_ok=True)
    lock = runner_file(runtime, running.runner_id, "lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `edge-runner runner` holds
    api = LocalApi(running.runner, logs, runtime)
    stack.loop.run(api.__aenter__())
    contexts = ContextsFile.load()
    contexts.put(Context("local", stack.api_base, "local"), make_current=True)
    secret_store().set("local", stack.token)
    contexts.save()
    yield running
    stack.loop.run(api.__aexit__(None, None, None))
    lock.close()
    logging.getLogger("edge_runner").removeHandler(logs)


def _app(**kw: Any) -> DashboardApp:
    return create_app(LiveSource(), gpu_interval=250 * MS, table_interval=500 * MS, **kw)


def _rows(app: DashboardApp, name: str) -> list[list[str]]:
    table = app.query_one(f"#{name}-table", LiveTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_every_screen_fills_from_the_real_stack(live: RunningRunner, stack: Stack) -> None:
    """Overview, runners, tasks, logs (local and through the control plane), GPU, contexts."""
    app = _app()
    with Client(stack.api_base, stack.token) as client:
        assert client.predict("slow", "wait", seconds=0.0) == "done"
    logging.getLogger("edge_runner.test").warning("a line for the dashboard")

    async def scenario(pilot: Pilot[None]) -> None:
        runner_id = live.runner_id
        await until(pilot, lambda: app.last_refresh is not None, "the first refresh")
        await until(
            pilot,
            lambda: f"{runner_id}: tunnel connected" in plain(app.query_one("#ov-runner")),
            "the runner line",
        )
        assert "reachable" in plain(app.query_one("#ov-context"))
        assert "slow (online)" in plain(app.query_one("#ov-models"))
        assert not app.query_one(Banner).display
        await pilot.press("3")
        await until(pilot, lambda: _rows(app, "runners"), "the runners table")
        row = _rows(app, "runners")[0]
        assert row[0] == runner_id and row[2] == "connected" and row[4] == "slow"
        await pilot.press("4")
        await until(pilot, lambda: _rows(app, "tasks"), "the tasks table")
        task = _rows(app, "tasks")[0]
        assert task[1:4] == ["slow", "wait", "done"]
        await pilot.press("6")
        await until(pilot, lambda: app.query(GpuPanel), "the GPU panel")
        title = plain(app.query_one(GpuPanel).query_one(".panel-title"))
        assert title.startswith("GPU 0")
        await pilot.press("5")
        log = app.query_one(RichLog)
        await until(pilot, lambda: "a line for the dashboard" in log_text(log), "a local log line")
        # the same runner's logs through the control plane (carried over the tunnel)
        await pilot.press("3", "l")
        await until(pilot, lambda: app.log_target == runner_id, "the switch")
        logging.getLogger("edge_runner.test").warning("a line through the tunnel")
        await until(pilot, lambda: "a line through the tunnel" in log_text(log), "a remote line")
        await pilot.press("2")
        await until(pilot, lambda: _rows(app, "contexts"), "the contexts table")
        context = _rows(app, "contexts")[0]
        assert context[:3] == ["*", "local", stack.api_base] and context[5] == "yes"
        assert stack.token not in " ".join(context)

    drive(app, scenario, (120, 40))


def test_cancel_and_drain_reach_the_control_plane(live: RunningRunner, stack: Stack) -> None:
    """With actions allowed: c + y cancels a running task; d + y drains the runner."""
    app = _app(allow_actions=True)
    answers: list[object] = []

    def call() -> None:
        with Client(stack.api_base, stack.token) as client:
            try:
                answers.append(client.predict("slow", "wait", seconds=30.0))
            except EdgeRunnerError as exc:
                answers.append(exc)

    caller = threading.Thread(target=call)
    caller.start()

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("4")
        await until(
            pilot, lambda: any(r[3] == "running" for r in _rows(app, "tasks")), "a running task"
        )
        table = app.query_one("#tasks-table", LiveTable)
        table.move_cursor(row=[r[3] for r in _rows(app, "tasks")].index("running"))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await until(pilot, lambda: answers, "the call to end")
        await until(
            pilot, lambda: any(r[3].startswith("cancelled") for r in _rows(app, "tasks")), "it"
        )
        await pilot.press("3", "d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await until(pilot, lambda: _rows(app, "runners")[0][2] == "draining", "the runner to drain")

    drive(app, scenario)
    caller.join(10_000 * MS)
    assert isinstance(answers[0], EdgeRunnerError)


def test_each_context_gets_its_own_reachability(live: RunningRunner, stack: Stack) -> None:
    """The contexts are checked together, and each answer lands on its own row."""
    contexts = ContextsFile.load()
    for name in ("dead-a", "dead-b", "dead-c"):
        contexts.put(Context(name, "http://127.0.0.1:9", "nobody"))
        secret_store().set(name, "er_pat_nothing_listens_there")
    contexts.save()
    records = LiveSource().contexts()
    assert {r["name"]: r["reachable"] for r in records} == {
        "dead-a": False,
        "dead-b": False,
        "dead-c": False,
        "local": True,
    }


def test_a_new_context_is_saved_and_switching_follows_it(live: RunningRunner, stack: Stack) -> None:
    """n saves a context (token in the secret store, not the file); Enter on an unreachable one
    shows the banner; Enter back on `local` recovers."""
    app = _app()

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        await until(pilot, lambda: _rows(app, "contexts"), "the contexts table")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, ContextForm), "the form")
        form = app.screen
        form.query_one("#ctx-name", Input).value = "gone"
        form.query_one("#ctx-api-base", Input).value = "http://127.0.0.1:9"
        form.query_one("#ctx-token", Input).value = "er_pat_not_in_any_file"
        await pilot.click("#save")
        await until(pilot, lambda: len(_rows(app, "contexts")) == 2, "the new row")
        assert ContextsFile.load().get("gone").api_base == "http://127.0.0.1:9"
        assert secret_store().get("gone") == "er_pat_not_in_any_file"
        for path in Path(ContextsFile.load().path).parent.rglob("*.yaml"):
            assert "er_pat_not_in_any_file" not in path.read_text()
        table = app.query_one("#contexts-table", LiveTable)
        table.move_cursor(row=[r[1] for r in _rows(app, "contexts")].index("gone"))
        await pilot.press("enter")
        banner = app.query_one(Banner)
        await until(pilot, lambda: banner.display, "the banner")
        assert "'gone'" in plain(banner) and "edge-runner up" in plain(banner)
        assert ContextsFile.load().current == "gone"
        table.move_cursor(row=[r[1] for r in _rows(app, "contexts")].index("local"))
        await pilot.press("enter")
        await until(pilot, lambda: not banner.display, "the banner to go")

    drive(app, scenario)


def test_a_control_plane_that_goes_away_shows_the_banner_and_the_gpus_go_on(
    live: RunningRunner, stack: Stack
) -> None:
    """The control plane stops: the banner says so; the local runner's GPU data keeps coming."""
    app = _app()

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.query(GpuPanel), "the GPU panel")
        stack.stop_control()
        banner = app.query_one(Banner)
        await until(pilot, lambda: banner.display, "the banner")
        assert "unreachable" in plain(banner)
        chart = app.query_one(GpuPanel).query_one(".m-util History")
        before = len(chart.values)  # type: ignore[attr-defined]
        await until(pilot, lambda: len(chart.values) > before + 2, "GPU samples")  # type: ignore[attr-defined]

    drive(app, scenario)
