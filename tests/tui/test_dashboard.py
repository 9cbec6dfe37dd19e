"""The dashboard's edge cases with a pinned fake source: outages and recovery, empty lists,
eight GPUs, no GPU, read-only mode, confirmations, failing actions, every key of every screen.

The same screens against a real control plane and runner: test_live.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog, TabbedContent

from edge_runner_tui.app import DashboardApp, create_app
from edge_runner_tui.messages import GpuSampled
from edge_runner_tui.screens.contexts import ContextsView
from edge_runner_tui.screens.gpu import GpuPanel, GpuPanels, HostPanel
from edge_runner_tui.screens.logs import CAPACITY, LogsView
from edge_runner_tui.screens.modals import ConfirmScreen, ContextForm, HelpScreen, RunnerDetail
from edge_runner_tui.screens.overview import OverviewView
from edge_runner_tui.widgets.banner import Banner
from edge_runner_tui.widgets.history import History
from edge_runner_tui.widgets.table import LiveTable
from tests.conftest import MS
from tests.fakes.dashboard import FakeSource
from tests.tui.conftest import drive, loaded, log_text, plain, until

NO_RUNNER = (
    "no runner runs on this machine (start one with `edge-runner up` or `edge-runner runner PATH`)"
)


def _app(source: FakeSource, **kw: object) -> DashboardApp:
    return create_app(source, poll=False, **kw)  # type: ignore[arg-type]


def _table(app: DashboardApp, name: str) -> LiveTable:
    return app.query_one(f"#{name}-table", LiveTable)


def _column(table: DataTable[object], index: int) -> list[str]:
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


def test_a_dead_daemon_and_control_plane_show_what_to_run_and_recover() -> None:
    """Both down: a banner naming `edge-runner up`; GPUs still shown; both back: it goes."""
    source = FakeSource(control_error="cannot reach http://127.0.0.1:7070", local_error=NO_RUNNER)
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        banner = app.query_one(Banner)
        assert banner.display
        assert "edge-runner up" in plain(banner)
        assert "cannot reach http://127.0.0.1:7070" in plain(banner)
        assert len(banner.lines) == 2
        overview = app.query_one(OverviewView)
        assert "UNREACHABLE" in plain(overview.query_one("#ov-context"))
        # the other panels keep working
        assert len(app.query(GpuPanel)) == 1
        assert "GPU(s)" in plain(overview.query_one("#ov-gpus"))
        source.control_error = source.local_error = ""
        await loaded(pilot)
        assert not banner.display
        assert _table(app, "runners").row_count == 3
        assert "runner-000000000001: tunnel connected for 60 min" in plain(
            overview.query_one("#ov-runner")
        )

    drive(app, scenario)


def test_an_outage_keeps_the_last_tables_marked_stale() -> None:
    """Runners and tasks stay as last read (dimmed hint) while the control plane is away."""
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        source.control_error = "cannot reach http://127.0.0.1:7070"
        await loaded(pilot)
        assert _table(app, "runners").row_count == 3
        assert app.query_one("#runners").has_class("stale")
        source.control_error = ""
        await loaded(pilot)
        assert not app.query_one("#runners").has_class("stale")

    drive(app, scenario)


def test_empty_lists_and_keys_on_empty_tables() -> None:
    """No runners, no tasks: empty tables; d, c, Enter and s on them do nothing and say nothing."""
    source = FakeSource(runners=0, tasks=0)
    app = _app(source, allow_actions=True)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        assert _table(app, "runners").row_count == 0
        assert _table(app, "tasks").row_count == 0
        assert "models   none" in plain(app.query_one("#ov-models"))
        await pilot.press("3", "d", "enter", "s", "l", "4", "c", "s")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen | RunnerDetail)
        assert [c for c in source.calls if c[0] != "follow_logs"] == []

    drive(app, scenario)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_eight_gpus_get_a_panel_each_at_any_size(size: tuple[int, int]) -> None:
    """Eight GPUs: eight panels with their values and processes; the host panel too."""
    app = _app(FakeSource(gpu_count=8))

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("6")
        panels = list(app.query(GpuPanel))
        assert [p.id for p in panels] == [f"gpu-{i}" for i in range(8)]
        first = plain(panels[0].query_one(".m-util .series-value"))
        assert first == "70 %"  # the second sample of the fake's wave: 90 - 20
        assert "edge-runner" in plain(panels[0].query_one(".gpu-procs"))
        assert "no processes" in plain(panels[1].query_one(".gpu-procs"))
        assert plain(panels[0].query_one(".m-power .series-value")) == "470 W/700"
        assert "16 CPUs" in plain(app.query_one(HostPanel).query_one(".panel-title"))
        assert "8 GPU(s)" in plain(app.query_one("#ov-gpus"))
        # a runner with 2 of its machine's 8 GPUs
        assert "2/8" in _column(_table(app, "runners"), 6)[0]

    drive(app, scenario, size)


def test_no_gpu_says_why_and_shows_the_host_only() -> None:
    """No GPU: the note from NVML, no GPU panels, the host panel."""
    app = _app(FakeSource(gpu_count=0, gpu_note="no GPU data: no NVIDIA driver here"))

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("6")
        assert not app.query(GpuPanel)
        note = plain(app.query_one("#gpu-note"))
        assert "No GPU to show: no GPU data: no NVIDIA driver here" in note
        assert app.query_one(HostPanel).display
        assert plain(app.query_one(".m-cpu .series-value")) == "23 %"

    drive(app, scenario)


def test_the_gpu_panels_follow_a_change_in_the_set_of_gpus() -> None:
    """A GPU that falls off the bus: its panel goes, the histories of the rest go on."""
    source = FakeSource(gpu_count=2)
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await loaded(pilot)
        assert len(app.query(GpuPanel)) == 2
        source.gpu_count = 1
        await loaded(pilot)
        await until(pilot, lambda: len(app.query(GpuPanel)) == 1, "one panel")
        assert app.query_one(GpuPanels).panels.keys() == {
            "GPU-00000000-0000-0000-0000-000000000000"
        }

    drive(app, scenario)


def test_read_only_by_default_and_the_toggle_shows_in_the_header() -> None:
    """d and c do nothing read-only (a warning says how); a turns actions on (header says so)."""
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        assert app.sub_title == "read-only"
        await pilot.press("3", "d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert ("drain", "runner-000000000001") not in source.calls
        assert any("press a to allow actions" in n.message for n in app._notifications)
        await pilot.press("a")
        assert app.sub_title == "ACTIONS ON"
        await pilot.press("a")
        assert app.sub_title == "read-only"

    drive(app, scenario)


def test_drain_asks_first_and_no_means_no() -> None:
    """With actions on, d asks; n leaves the runner alone, y drains it."""
    source = FakeSource()
    app = _app(source, allow_actions=True)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("3", "d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert "runner-000000000001" in plain(app.screen.query_one("#confirm-question"))
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the answer")
        assert ("drain", "runner-000000000001") not in source.calls
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await until(pilot, lambda: ("drain", "runner-000000000001") in source.calls, "the drain")
        await until(
            pilot,
            lambda: any("is draining" in n.message for n in app._notifications),
            "the notice",
        )

    drive(app, scenario)


def test_cancel_asks_first_and_a_finished_task_is_not_cancelled() -> None:
    """c on a running task asks then cancels; on a finished one it says so and asks nothing."""
    source = FakeSource()
    app = _app(source, allow_actions=True)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("4")
        table = _table(app, "tasks")
        statuses = _column(table, 3)
        running = statuses.index("running")
        table.move_cursor(row=running)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.click("#yes")
        task_id = table.selected_key
        await until(pilot, lambda: ("cancel", task_id) in source.calls, "the cancel")
        done = statuses.index("done")
        table.move_cursor(row=done)
        await pilot.press("c")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("nothing to cancel" in n.message for n in app._notifications)

    drive(app, scenario)


def test_a_failing_action_is_reported_and_the_app_goes_on() -> None:
    """The control plane refuses: an error notice; the app still answers keys."""
    source = FakeSource(fail_actions="runner-000000000001 is not yours (403)")
    app = _app(source, allow_actions=True)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("3", "d", "y")
        await until(
            pilot,
            lambda: any(
                "not yours" in n.message and n.severity == "error" for n in app._notifications
            ),
            "the error notice",
        )
        await pilot.press("4")
        assert app.query_one(TabbedContent).active == "tab-tasks"

    drive(app, scenario)


def test_number_keys_switch_screens_and_focus_their_table() -> None:
    """1-6 show each screen; its table (or log) takes the keys."""
    app = _app(FakeSource())

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        panes = ("overview", "contexts", "runners", "tasks", "logs", "gpu")
        for key, pane in zip("123456", panes, strict=True):
            await pilot.press(key)
            assert app.query_one(TabbedContent).active == f"tab-{pane}"
        await pilot.press("3")
        assert app.focused is _table(app, "runners")
        await pilot.press("5")
        assert isinstance(app.focused, RichLog)

    drive(app, scenario)


def test_help_lists_every_key_of_every_screen() -> None:
    """? lists the keys of the app and of each screen; Esc closes it."""
    app = _app(FakeSource())

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = plain(app.screen.query_one("#help-text"))
        for words in (
            "switch screen",
            "Drain",
            "Cancel",
            "Filter",
            "Pause",
            "Save",
            "Theme",
            "New context",
            "make the context active",
            "the runner's detail",
            "Quit",
        ):
            assert words in text, words
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help to close")

    drive(app, scenario)


def test_data_for_a_panel_that_is_gone_is_dropped_not_fatal() -> None:
    """A sample landing while the screen is torn down (quitting) does not crash the app."""
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await app.query_one(OverviewView).remove()
        await app.query_one(GpuPanels).remove()
        await loaded(pilot)
        await app.on_gpu_sampled(GpuSampled(source.gpus()))
        assert app.is_running and app.return_code is None

    drive(app, scenario)


def test_runner_detail_and_sort() -> None:
    """Enter shows the runner's full record; s sorts by the next column, then reverses."""
    app = _app(FakeSource())

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("3")
        table = _table(app, "runners")
        await pilot.press("s")  # RUNNER, descending
        assert _column(table, 0) == sorted(_column(table, 0), reverse=True)
        await pilot.press("s")  # HOST, ascending
        assert table.sort_column == 1 and not table.sort_reverse
        table.move_cursor(row=0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunnerDetail), "the detail")
        body = plain(app.screen.query_one("#detail-body"))
        assert '"hostname": "lab-1"' in body
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RunnerDetail), "detail to close")

    drive(app, scenario)


def test_the_cursor_stays_on_its_row_across_refreshes() -> None:
    """A refresh that reorders rows keeps the cursor on the same runner."""
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("3")
        table = _table(app, "runners")
        table.move_cursor(row=2)
        chosen = table.selected_key
        source.runners = 5
        await loaded(pilot)
        assert table.row_count == 5
        assert table.selected_key == chosen

    drive(app, scenario)


def test_logs_filter_level_pause_follow_and_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/ filters by text, e raises the level, p pauses (records still kept), f shows them, w saves
    what is shown."""
    monkeypatch.chdir(tmp_path)
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        logs = app.query_one(LogsView)
        logs.add(source.logs, "the local runner")
        await pilot.press("5")
        log = app.query_one(RichLog)
        await until(pilot, lambda: "record 19" in log_text(log), "the records")
        await pilot.press("slash")
        box = app.query_one("#logs-filter", Input)
        assert box.display and app.focused is box
        await pilot.press(*"reconnecting", "enter")
        assert logs.text == "reconnecting"
        assert {r["level"] for r in logs.shown()} == {"WARNING"}
        await pilot.press("slash", "ctrl+u", "enter")  # clear the text filter
        assert logs.text == ""
        await pilot.press("e", "e", "e")  # ERROR and above
        assert {r["level"] for r in logs.shown()} == {"ERROR"}
        await pilot.press("e")  # wraps to DEBUG
        assert len(logs.shown()) == 20
        await pilot.press("p")
        new = [dict(source.logs[0], message="arrived while paused")]
        logs.add(new, "the local runner")
        await pilot.pause()
        assert "arrived while paused" not in log_text(log)
        assert "PAUSED" in plain(app.query_one("#logs-status"))
        await pilot.press("f")
        await until(pilot, lambda: "arrived while paused" in log_text(log), "the paused record")
        await pilot.press("w")
        assert logs.saved_to is not None and logs.saved_to.parent == tmp_path
        saved = logs.saved_to.read_text().splitlines()
        assert len(saved) == 21
        assert saved[-1].endswith("arrived while paused")

    drive(app, scenario)


def test_the_log_buffer_keeps_the_last_5000_lines() -> None:
    """6,000 records: the first 1,000 are dropped from the buffer and the view."""
    app = _app(FakeSource())

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("5")
        logs = app.query_one(LogsView)
        record = FakeSource().logs[1]
        logs.add([dict(record, message=f"line {i}") for i in range(6000)], "the local runner")
        await until(pilot, lambda: app.query_one(RichLog).lines, "the lines")
        assert len(logs.records) == CAPACITY
        assert logs.records[0]["message"] == "line 1000"
        assert len(app.query_one(RichLog).lines) == CAPACITY

    drive(app, scenario)


def test_the_log_follower_feeds_the_logs_screen_and_l_switches_runner() -> None:
    """The follower thread's records reach the screen; l on a runner follows that one."""
    source = FakeSource()
    app = create_app(source, poll=True, gpu_interval=3600, table_interval=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        logs = app.query_one(LogsView)
        await until(pilot, lambda: len(logs.records) == 20, "the local runner's records")
        assert logs.source == "the local runner"
        await until(pilot, lambda: _table(app, "runners").row_count == 3, "the runners")
        await pilot.press("3", "l")
        assert app.query_one(TabbedContent).active == "tab-logs"
        await until(pilot, lambda: ("follow_logs", "runner-000000000001") in source.calls, "l")
        await until(pilot, lambda: logs.source == "runner runner-000000000001", "the switch")
        await until(pilot, lambda: len(logs.records) == 20, "that runner's records")

    drive(app, scenario)


def test_a_log_stream_that_fails_says_so_and_recovers() -> None:
    """The stream fails: the Logs status says DOWN with the reason; once it works, records come
    and the status says following again."""
    source = FakeSource(log_error="the event stream of runner runner-1 ended: refused")
    app = create_app(source, poll=True, gpu_interval=3600, table_interval=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        status = app.query_one("#logs-status")
        await until(pilot, lambda: "DOWN (the event stream" in plain(status), "the DOWN status")
        source.log_error = ""
        logs = app.query_one(LogsView)
        await until(pilot, lambda: len(logs.records) == 20, "the records", 10_000 * MS)
        assert "following" in plain(status) and "DOWN" not in plain(status)

    drive(app, scenario)


def test_contexts_enter_makes_one_active_and_n_creates_one() -> None:
    """Enter on a context makes it active; n opens a form that checks its input and saves."""
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("2")
        table = _table(app, "contexts")
        assert _column(table, 1) == ["edge", "lab"]  # by name
        assert _column(table, 0) == ["", "*"]
        assert _column(table, 5) == ["NO", "yes"]
        assert "er_p…ab12" in _column(table, 4)
        table.move_cursor(row=0)
        await pilot.press("enter")
        await until(pilot, lambda: source.active == "edge", "the switch")
        await until(pilot, lambda: _column(table, 0) == ["*", ""], "the table to follow")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, ContextForm), "the form")
        form = app.screen
        await pilot.press(*"lab2", "tab", *"ftp://nope", "tab", "tab", "enter")
        assert "must start with http://" in plain(form.query_one("#ctx-error"))
        assert app.screen is form
        form.query_one("#ctx-api-base", Input).value = "http://127.0.0.1:9999"
        form.query_one("#ctx-token", Input).value = "er_pat_secret"
        await pilot.click("#save")
        await until(pilot, lambda: any(c[0] == "create_context" for c in source.calls), "save")
        assert ("create_context", "lab2", "http://127.0.0.1:9999", "local", "er_pat_secret") in (
            source.calls
        )
        assert not isinstance(app.screen, ContextForm)

    drive(app, scenario)


def test_an_unknown_context_is_reported() -> None:
    """use_context failing (the file changed under us): an error notice, nothing else moves."""
    source = FakeSource()
    app = _app(source)

    async def scenario(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        app.use_context("gone")
        await until(
            pilot, lambda: any("no context 'gone'" in n.message for n in app._notifications), "it"
        )
        assert source.active == "lab"

    drive(app, scenario)


def test_theme_toggles_and_q_quits() -> None:
    """t switches dark and light; q ends the app."""
    app = _app(FakeSource())

    async def scenario(pilot: Pilot[None]) -> None:
        dark = app.theme
        await pilot.press("t")
        assert app.theme != dark and "light" in app.theme
        await pilot.press("t")
        assert app.theme == dark
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to end")

    drive(app, scenario)


def test_contexts_view_without_reachability_yet() -> None:
    """A context not checked yet shows ? rather than a guess."""
    app = _app(FakeSource())

    async def scenario(pilot: Pilot[None]) -> None:
        view = app.query_one(ContextsView)
        records = FakeSource().contexts()
        del records[0]["reachable"]
        view.show(records)
        await pilot.pause()
        assert _column(_table(app, "contexts"), 5) == ["NO", "?"]

    drive(app, scenario)


def test_history_bars_use_a_fixed_scale() -> None:
    """0 is the baseline, the maximum a full bar, None a gap; the newest is on the right."""
    chart = History(10, maximum=100.0)
    for value in (0.0, 50.0, 100.0, None, 250.0):
        chart.values.append(value)
    assert chart.bars(7) == "  ▁▅█ █"
    auto = History(10, maximum=None)
    auto.values.extend([1.0, 4.0])
    assert auto.bars(2) == "▃█"
