"""Tasks: queued, running and recent; c cancels one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from edge_runner.views import TaskView

from ..format import ago
from ..widgets.table import LiveTable

__all__ = ["TasksView"]


def _ms(seconds: float | None) -> str:
    """``12 ms`` under a second, ``1.25 s`` above."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _in_out(task: TaskView) -> str:
    """``120/117``: a stream-in task's input items and output chunks; ``-`` for others."""
    if "inputs" not in task:
        return "-"
    return f"{task['inputs']}/{task.get('outputs', 0)}"


class TasksView(Widget):
    """The tasks table."""

    BINDINGS = [Binding("c", "cancel", "Cancel"), Binding("s", "sort", "Sort")]

    def __init__(self) -> None:
        super().__init__(id="tasks")
        self.tasks: dict[str, TaskView] = {}

    def compose(self) -> ComposeResult:
        yield Static("c: cancel a queued or running task   s: sort", classes="hint")
        yield LiveTable(
            ("TASK", "MODEL", "METHOD", "STATUS", "QUEUED", "RUN", "TOK/S", "IN/OUT", "AGE"),
            id="tasks-table",
        )

    def show(self, tasks: list[TaskView], now: float) -> None:
        """Take the tasks."""
        self.tasks = {t["task_id"]: t for t in tasks}
        rows = []
        for t in tasks:
            status = t["status"] + (f" {t['code']}" if t.get("code") else "")
            run = t.get("run_time_s")
            if run is None and t["status"] == "running":
                run = t.get("age_s")
            rows.append(
                (
                    t["task_id"],
                    (
                        t["task_id"][:12],
                        t["model"],
                        t["method"],
                        status,
                        _ms(t.get("queue_wait_s")),
                        _ms(run),
                        t.get("tokens_per_s") or "-",
                        _in_out(t),
                        ago(now - float(t.get("created_at", now))),
                    ),
                )
            )
        self.query_one(LiveTable).show(rows)

    def action_cancel(self) -> None:
        """Cancel the selected task (confirmed; needs actions on)."""
        key = self.query_one(LiveTable).selected_key
        task = self.tasks.get(key) if key is not None else None
        if task is None:
            return
        if task["status"] not in ("queued", "running"):
            self.app.notify(f"task {key[:12]} is {task['status']}: nothing to cancel")  # type: ignore[index]
            return
        self.app.cancel_task(task["task_id"])  # type: ignore[attr-defined]

    def action_sort(self) -> None:
        """Sort by the next column."""
        self.app.notify(self.query_one(LiveTable).cycle_sort())
