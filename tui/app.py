"""The dashboard app: a tab per screen, pollers off the UI thread, and the actions.

Data comes from a :class:`~edge_runner_tui.data.DataSource` (the live one reads the control plane
and the local runner through edge-runner's clients). GPUs are read every second and the tables every
two (nvitop's and k9s's cadence) in Textual thread workers that never overlap themselves; log
records arrive from a follower thread into a queue that the UI drains four times a second, so a
burst of lines costs one repaint, not one per line.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, RichLog, TabbedContent, TabPane

from edge_runner.errors import ConfigError
from edge_runner.views import LogRecordView, RunnerView

from .data import DataSource, LiveSource
from .messages import ContextsLoaded, GpuSampled, LogRecords, Refreshed
from .screens.contexts import ContextsView
from .screens.gpu import GpuPanels
from .screens.logs import LogsView
from .screens.modals import ConfirmScreen, ContextForm, HelpScreen, RunnerDetail, help_text
from .screens.overview import OverviewView
from .screens.runners import RunnersView
from .screens.tasks import TasksView
from .widgets.banner import Banner

__all__ = ["DashboardApp", "NotATerminal", "create_app", "run_dashboard"]

logger = logging.getLogger(__name__)


@contextmanager
def _unless_torn_down() -> Iterator[None]:
    """Drop data that arrives while the main screen is not composed (starting, quitting)."""
    try:
        yield
    except NoMatches:
        logger.debug("no panel for the data: the dashboard is starting or quitting")


#: (pane id, title, view class), in key order 1-6
SCREENS: tuple[tuple[str, str, type[Widget]], ...] = (
    ("overview", "Overview", OverviewView),
    ("contexts", "Contexts", ContextsView),
    ("runners", "Runners", RunnersView),
    ("tasks", "Tasks", TasksView),
    ("logs", "Logs", LogsView),
    ("gpu", "GPU", GpuPanels),
)
#: how often the log queue is moved into the Logs screen
LOG_DRAIN_S = 0.25
#: wait before following logs again after a stream ends or fails
LOG_RETRY_S = 2.0


class DashboardApp(App[None]):
    """The dashboard.

    Args:
        source: where the data comes from.
        allow_actions: start with drain and cancel allowed (``--allow-actions``).
        poll: start the pollers (tests that drive :meth:`poll_once` themselves pass False).
        gpu_interval: seconds between GPU samples.
        table_interval: seconds between table refreshes.
    """

    CSS_PATH = "dashboard.tcss"
    TITLE = "edge-runner"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        *(
            Binding(str(i), f"tab('{pane}')", title, show=False)
            for i, (pane, title, _) in enumerate(SCREENS, 1)
        ),
        Binding("question_mark", "help", "Keys"),
        Binding("a", "toggle_actions", "Actions"),
        Binding("t", "toggle_theme", "Theme"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        source: DataSource,
        *,
        allow_actions: bool = False,
        poll: bool = True,
        gpu_interval: float = 1.0,
        table_interval: float = 2.0,
    ) -> None:
        super().__init__()
        self.source = source
        self.allow_actions = allow_actions
        self.poll = poll
        self.gpu_interval = gpu_interval
        self.table_interval = table_interval
        self.log_target: str | None = None
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        #: (generation, source, a record or why the stream stopped)
        self._log_queue: deque[tuple[int, str, LogRecordView | str]] = deque()
        self._log_generation = 0
        self._log_stop = threading.Event()
        self.last_refresh: Refreshed | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        with TabbedContent(initial="tab-overview"):
            for i, (pane, title, view) in enumerate(SCREENS, 1):
                with TabPane(f"{i} {title}", id=f"tab-{pane}"):
                    yield view()
        yield Footer()

    def on_mount(self) -> None:
        """Show the mode; start the pollers and the log follower."""
        self._show_mode()
        if not self.poll:
            return
        self.set_interval(self.gpu_interval, self._poll_gpus)
        self.set_interval(self.table_interval, self._poll_tables)
        self.set_interval(5 * self.table_interval, self._poll_contexts)
        self.set_interval(LOG_DRAIN_S, self._drain_logs)
        self._poll_gpus()
        self._poll_tables()
        self._poll_contexts()
        self._follow_logs(None)

    def on_unmount(self) -> None:
        """Let the log follower go."""
        self._log_stop.set()

    # -- polling -----------------------------------------------------------------------

    def _once(self, group: str, gather: Callable[[], Message]) -> None:
        """Run ``gather`` in a thread worker unless the last one of ``group`` still runs (a slow
        control plane must not pile up threads), and post what it returns."""
        with self._busy_lock:
            if group in self._busy:
                return
            self._busy.add(group)
        self._gather(group, gather)

    @work(thread=True, exit_on_error=False)
    def _gather(self, group: str, gather: Callable[[], Message]) -> None:
        try:
            self.post_message(gather())
        except Exception:  # a bug in a source must not kill the poller
            logger.exception("dashboard poller %s failed", group)
        finally:
            with self._busy_lock:
                self._busy.discard(group)

    def _read_tables(self) -> Refreshed:
        return Refreshed(self.source.control(), self.source.local(), self.source.now())

    def _poll_tables(self) -> None:
        self._once("tables", self._read_tables)

    def _poll_gpus(self) -> None:
        self._once("gpus", lambda: GpuSampled(self.source.gpus()))

    def _poll_contexts(self) -> None:
        self._once("contexts", lambda: ContextsLoaded(self.source.contexts()))

    async def poll_once(self) -> None:
        """Read everything once and show it (tests, and the screenshot)."""
        import asyncio

        for message in await asyncio.gather(
            asyncio.to_thread(self._read_tables),
            asyncio.to_thread(lambda: GpuSampled(self.source.gpus())),
            asyncio.to_thread(lambda: ContextsLoaded(self.source.contexts())),
        ):
            self.post_message(message)

    def on_refreshed(self, message: Refreshed) -> None:
        """New tables: every screen that shows them."""
        self.last_refresh = message
        stale = not message.plane.reachable
        with _unless_torn_down():
            self.query_one(Banner).show(message.plane, message.local)
            self.query_one(OverviewView).show(message.plane, message.local, message.now)
            runners, tasks = self.query_one(RunnersView), self.query_one(TasksView)
            if not stale:  # an outage keeps the last tables; the banner says why
                runners.show(message.plane.runners, message.now)
                tasks.show(message.plane.tasks, message.now)
            runners.set_class(stale, "stale")
            tasks.set_class(stale, "stale")

    async def on_gpu_sampled(self, message: GpuSampled) -> None:
        """A GPU sample: the overview line and the GPU screen."""
        with _unless_torn_down():
            self.query_one(OverviewView).show_gpus(message.view)
            await self.query_one(GpuPanels).show(message.view)

    def on_contexts_loaded(self, message: ContextsLoaded) -> None:
        """The contexts table."""
        with _unless_torn_down():
            self.query_one(ContextsView).show(message.records)

    # -- logs --------------------------------------------------------------------------

    def _follow_logs(self, runner_id: str | None) -> None:
        """Follow the local runner's logs (None) or ``runner_id``'s through the control plane.

        A daemon thread, not a worker: a stream read blocks until the next line and cannot be
        interrupted, and Python joins the workers' executor at exit, so quitting would wait.
        """
        self._log_stop.set()
        self._log_stop = stop = threading.Event()
        self._log_generation += 1
        self.log_target = runner_id
        source = "the local runner" if runner_id is None else f"runner {runner_id}"
        thread = threading.Thread(
            target=self._log_loop,
            args=(runner_id, source, self._log_generation, stop),
            name="dashboard-logs",
            daemon=True,
        )
        thread.start()

    def _log_loop(
        self, runner_id: str | None, source: str, generation: int, stop: threading.Event
    ) -> None:
        last = 0.0  # a new stream replays recent records: skip those already shown
        while not stop.is_set():
            try:
                for record in self.source.follow_logs(runner_id, stop):
                    if stop.is_set():
                        return
                    if float(record.get("time", 0)) <= last:
                        continue
                    last = float(record.get("time", 0))
                    self._log_queue.append((generation, source, record))
                problem = "the log stream ended"
            except Exception as exc:  # an outage: say so in the Logs screen, then retry
                problem = str(exc)
            if not stop.is_set():
                self._log_queue.append((generation, source, problem))
            stop.wait(LOG_RETRY_S)

    def _drain_logs(self) -> None:
        batch: list[LogRecordView] = []
        source = error = ""
        while self._log_queue:
            generation, source, record = self._log_queue.popleft()
            if generation != self._log_generation:
                continue
            if isinstance(record, str):
                error = record
            else:
                batch.append(record)
                error = ""
        if batch or error:
            self.post_message(LogRecords(batch, source, error))

    def on_log_records(self, message: LogRecords) -> None:
        """Records for the Logs screen (or why none come)."""
        with _unless_torn_down():
            self.query_one(LogsView).add(message.records, message.source, message.error)

    def follow_runner_logs(self, runner_id: str) -> None:
        """Switch the Logs screen to ``runner_id`` (through the control plane) and show it."""
        logs = self.query_one(LogsView)
        logs.reset(f"runner {runner_id}")
        self._follow_logs(runner_id)
        self.action_tab("logs")

    # -- keys --------------------------------------------------------------------------

    def action_tab(self, pane: str) -> None:
        """Show a screen and focus its table."""
        self.query_one(TabbedContent).active = f"tab-{pane}"
        self._focus_pane(pane)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A click on a tab focuses its table too."""
        pane = str(event.pane.id).removeprefix("tab-")
        self._focus_pane(pane)
        if pane == "contexts" and self.poll:
            self._poll_contexts()

    def _focus_pane(self, pane: str) -> None:
        for widget in self.query_one(f"#tab-{pane}", TabPane).query("DataTable, RichLog"):
            if isinstance(widget, DataTable | RichLog):
                widget.focus()
                return

    def action_help(self) -> None:
        """Every key."""
        app_keys = [("1-6", "switch screen")] + [
            (b.key, b.description) for b in self.BINDINGS if isinstance(b, Binding) and b.show
        ]
        screens = {}
        for _, title, view in SCREENS:
            keys = [(b.key, b.description) for b in getattr(view, "BINDINGS", [])]
            keys = list(getattr(view, "EXTRA_KEYS", [])) + keys
            if keys:
                screens[title] = keys
        self.push_screen(HelpScreen(help_text(app_keys, screens)))

    def action_toggle_actions(self) -> None:
        """Allow or forbid drain and cancel."""
        self.allow_actions = not self.allow_actions
        self._show_mode()
        self.notify("actions allowed (each asks first)" if self.allow_actions else "read-only")

    def action_toggle_theme(self) -> None:
        """Dark and light."""
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def _show_mode(self) -> None:
        self.sub_title = "ACTIONS ON" if self.allow_actions else "read-only"

    # -- actions the screens ask for ----------------------------------------------------

    def _act(self, question: str, act: Callable[[], str]) -> None:
        if not self.allow_actions:
            self.notify(
                "read-only: press a to allow actions (or start with --allow-actions)",
                severity="warning",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_action(act)

        self.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, exit_on_error=False)
    def _run_action(self, act: Callable[[], str]) -> None:
        try:
            text, severity = act(), "information"
        except Exception as exc:  # the control plane said no, or is gone: say so
            text, severity = str(exc), "error"
        self.call_from_thread(self.notify, text, severity=severity)
        self.call_from_thread(self._poll_tables)

    def drain(self, runner_id: str) -> None:
        """Drain a runner, after a confirmation."""
        self._act(
            f"Drain runner {runner_id}? It finishes its tasks and takes no new ones.",
            lambda: self.source.drain(runner_id),
        )

    def cancel_task(self, task_id: str) -> None:
        """Cancel a task, after a confirmation."""
        self._act(f"Cancel task {task_id}?", lambda: self.source.cancel(task_id))

    def show_runner(self, runner: RunnerView) -> None:
        """One runner's detail."""
        self.push_screen(RunnerDetail(runner))

    def use_context(self, name: str) -> None:
        """Make ``name`` active; the rest of the app follows it."""
        self._context_action(lambda: self.source.use_context(name), f"context {name} is active")

    def new_context(self) -> None:
        """The new-context form."""

        def done(form: dict[str, str] | None) -> None:
            if form:
                self._context_action(
                    lambda: self.source.create_context(**form), f"context {form['name']} saved"
                )

        self.push_screen(ContextForm(), done)

    @work(thread=True, exit_on_error=False)
    def _context_action(self, act: Callable[[], None], done: str) -> None:
        try:
            act()
        except Exception as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.call_from_thread(self.notify, done)
        self.post_message(ContextsLoaded(self.source.contexts()))
        self.post_message(self._read_tables())
        self.call_from_thread(self._follow_logs, self.log_target)


def create_app(
    source: DataSource | None = None, *, allow_actions: bool = False, poll: bool = True, **kw: float
) -> DashboardApp:
    """The app, on ``source`` (default: the live data of the active context)."""
    return DashboardApp(source or LiveSource(), allow_actions=allow_actions, poll=poll, **kw)


class NotATerminal(ConfigError):
    """The dashboard was started with no terminal to draw in."""


def _tty(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def run_dashboard(
    context: str | None = None, runner_id: str | None = None, *, allow_actions: bool = False
) -> int:
    """Run the dashboard in this terminal until ``q``.

    Raises:
        NotATerminal: stdin or stderr (where Textual draws) is not a terminal.
    """
    from textual.logging import TextualHandler

    # Without a terminal Textual would not stop: its input thread reads EOF forever, and a
    # dashboard started from a script (or by `nohup`) would burn a core until killed.
    missing = [name for name, f in (("stdin", sys.stdin), ("stderr", sys.stderr)) if not _tty(f)]
    if missing:
        raise NotATerminal(
            f"the dashboard draws in a terminal, and {' and '.join(missing)} "
            f"{'are not terminals' if len(missing) > 1 else 'is not a terminal'}; "
            "run it in a terminal (over SSH: ssh -t). For scripts: `edge-runner status`, "
            "`edge-runner runners`, `edge-runner logs`, or -o json on them"
        )

    # Log lines on stderr would tear the screen: send them to Textual's devtools console.
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [TextualHandler()]
    try:
        create_app(LiveSource(context, runner_id), allow_actions=allow_actions).run()
    finally:
        root.handlers = saved
    return 0
