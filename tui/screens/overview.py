"""Overview: the context, control plane (its replicas), the local runner, rates, and a GPU
summary."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Static

from edge_runner.views import ModelView

from ..data import ControlView, GpuView, LocalView
from ..format import ago, gib, set_text, short
from ..widgets.history import History

__all__ = ["OverviewView"]

#: samples kept: the last ten minutes at the 2 s table refresh
HISTORY = 300


class OverviewView(Widget):
    """What is running, at a glance."""

    def __init__(self) -> None:
        super().__init__(id="overview")
        self._last: tuple[float, int, int] | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="ov-context")
            yield Static("", id="ov-replicas")
            yield Static("", id="ov-runner")
            yield Static("", id="ov-models")
            with Horizontal(classes="ov-rate"):
                yield Static("requests/s", classes="ov-label")
                yield History(HISTORY, maximum=None, id="ov-rps")
                yield Static("", id="ov-rps-now", classes="ov-value")
            with Horizontal(classes="ov-rate"):
                yield Static("errors", classes="ov-label")
                yield History(HISTORY, id="ov-err")
                yield Static("", id="ov-err-now", classes="ov-value")
            yield Static("", id="ov-gpus")

    def show(self, control: ControlView, local: LocalView, now: float) -> None:
        """Take a refresh."""
        reach = "reachable" if control.reachable else f"UNREACHABLE: {escape(control.error)}"
        set_text(
            self.query_one("#ov-context", Static),
            f"[b]context[/b]  {escape(control.context)}  "
            f"{escape(control.api_base or '-')}  {reach}",
        )
        set_text(self.query_one("#ov-replicas", Static), _replicas_line(control))
        set_text(self.query_one("#ov-runner", Static), self._runner_line(local, now))
        models = escape(", ".join(_model_text(m) for m in control.models) or "none")
        set_text(self.query_one("#ov-models", Static), f"[b]models[/b]   {models}")
        self._rates(control, now)

    def _runner_line(self, local: LocalView, now: float) -> str:
        snap = local.snapshot
        if snap is None:
            return f"[b]runner[/b]   none on this machine: {escape(local.error)}"
        tunnel = snap["tunnel"]
        since = tunnel.get("connected_since")
        up = f" for {ago(now - since)}" if since else ""
        last = tunnel.get("last_error")
        error = f", last error: {escape(short(last, 60))}" if last else ""
        return (
            f"[b]runner[/b]   {escape(snap['runner_id'])}: tunnel {tunnel['state']}{up}, "
            f"{tunnel['reconnects']} reconnects{error}; "
            f"slots {snap['busy']}/{snap['pool_size']} busy"
        )

    def _rates(self, control: ControlView, now: float) -> None:
        requests = sum(int(m.get("requests", 0)) for m in control.models)
        errors = sum(int(m.get("errors", 0)) for m in control.models)
        rps = self.query_one("#ov-rps", History)
        err = self.query_one("#ov-err", History)
        if not control.reachable:  # a gap in both charts, not a fake zero
            rps.push(None)
            err.push(None)
            return
        if self._last is not None and now > self._last[0]:
            then, old_requests, old_errors = self._last
            new = max(0, requests - old_requests)
            rate = new / (now - then)
            # a rate of the requests in this interval; none at all is 0 %
            error_rate = 100 * min(new, max(0, errors - old_errors)) / new if new else 0.0
            rps.push(rate)
            err.push(error_rate)
            set_text(self.query_one("#ov-rps-now", Static), f"{rate:.1f}/s")
            set_text(self.query_one("#ov-err-now", Static), f"{error_rate:.0f} %")
        self._last = (now, requests, errors)

    def show_gpus(self, view: GpuView) -> None:
        """Take a GPU sample."""
        if not view.gpus:
            text = escape(view.note or "no GPU data")
        else:
            utils = [u for g in view.gpus if (u := g.get("utilization")) is not None]
            util = f"{sum(utils) / len(utils):.0f} % busy" if utils else "busy: -"
            used = sum(g["memory_used"] for g in view.gpus)
            total = sum(g["memory_total"] for g in view.gpus)
            text = f"{len(view.gpus)} GPU(s), {util}, {gib(used)}/{gib(total)} GiB"
        set_text(self.query_one("#ov-gpus", Static), f"[b]GPUs[/b]     {text}")


def _replicas_line(control: ControlView) -> str:
    """``control`` and its replicas: id, runners held, tasks fronted, and what is unwell."""
    replicas = control.replicas
    if not replicas:
        return "[b]control[/b]  -"
    parts = []
    for replica in replicas:
        unwell = [
            f"{name} {replica[name]}" for name in ("registry", "bus") if replica[name] != "ok"
        ]
        health = f", {escape(', '.join(unwell))}" if unwell else ""
        parts.append(
            f"{escape(replica['id'])} ({replica['runners']} runners, "
            f"{replica['tasks']} tasks{health})"
        )
    count = f"{len(replicas)} replica{'s' if len(replicas) > 1 else ''}"
    return f"[b]control[/b]  {count}: " + "; ".join(parts)


def _model_text(model: ModelView) -> str:
    status = model.get("status", "?")
    if status == "loading" and model.get("progress"):
        status = f"loading {float(model['progress']) * 100:.0f} %"
    return f"{model['id']} ({status})"
