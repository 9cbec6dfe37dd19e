"""GPU: one panel per GPU (utilisation, memory, temperature, power, each with its history, and
the processes using it) and the host's CPU and RAM beside them. Without a GPU it says why.
"""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from edge_runner.views import GpuInfoView, HostView

from ..data import GpuView
from ..format import gib, percent, set_text, short
from ..widgets.history import History

__all__ = ["HISTORY", "GpuPanel", "GpuPanels", "HostPanel"]

#: samples kept per series: five minutes at the 1 s refresh
HISTORY = 300
_METRICS = (
    ("util", "util"),
    ("mem", "mem"),
    ("temp", "temp"),
    ("power", "power"),
)


class _Series(Horizontal):
    """A label, a history chart and the latest value on one line."""

    def __init__(self, label: str, *, classes: str) -> None:
        super().__init__(classes=f"series {classes}")
        self.label = label

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="series-label")
        yield History(HISTORY, classes="series-chart")
        yield Static("-", classes="series-value")

    def push(self, value: float | None, text: str, maximum: float = 100.0) -> None:
        """Add a sample (None: a gap) on a 0..``maximum`` scale; show ``text`` as the value."""
        chart = self.query_one(History)
        chart.maximum = maximum
        chart.push(value)
        # a fixed-width cell: no re-layout needed
        set_text(self.query_one(".series-value", Static), text, layout=False)


class GpuPanel(Vertical):
    """One GPU."""

    def __init__(self, gpu: GpuInfoView, owners: dict[int, str]) -> None:
        super().__init__(classes="gpu-panel panel", id=f"gpu-{gpu['index']}")
        self.uuid = str(gpu["uuid"])
        self._first: tuple[GpuInfoView, dict[int, str]] | None = (gpu, owners)

    def on_mount(self) -> None:
        """Show the sample the panel was made for."""
        if self._first is not None:
            self.show(*self._first)
            self._first = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-title")
        for label, name in _METRICS:
            yield _Series(label, classes=f"m-{name}")
        yield Static("", classes="gpu-procs")

    def show(self, gpu: GpuInfoView, owners: dict[int, str]) -> None:
        """Take a sample of this GPU."""
        mig = "  MIG" if gpu.get("mig") else ""
        set_text(
            self.query_one(".panel-title", Static),
            f"[b]GPU {gpu['index']}[/b]  {escape(short(gpu['name'], 28))}{mig}",
        )
        total = float(gpu.get("memory_total") or 0)
        used = float(gpu.get("memory_used") or 0)
        mem_pct = 100 * used / total if total else None
        power, limit = gpu.get("power_draw"), gpu.get("power_limit")
        power_text = "-" if power is None else f"{power:.0f} W"
        if power is not None and limit:
            power_text += f"/{limit:.0f}"
        temp = gpu.get("temperature")
        self.query_one(".m-util", _Series).push(
            gpu.get("utilization"), percent(gpu.get("utilization"))
        )
        self.query_one(".m-mem", _Series).push(mem_pct, f"{gib(used)}/{gib(total)} GiB")
        self.query_one(".m-temp", _Series).push(temp, "-" if temp is None else f"{temp} °C")
        self.query_one(".m-power", _Series).push(power, power_text, float(limit or 0) or 500.0)
        procs = gpu.get("processes") or []
        if not procs:
            text = "[dim]no processes[/dim]"
        else:
            lines = []
            for proc in procs[:2]:
                owner = proc.get("owner") or owners.get(int(proc["pid"]), "")
                memory = proc.get("used_memory")
                lines.append(
                    f"pid {proc['pid']:<7} {gib(memory) if memory is not None else '-':>5} GiB"
                    f"  {escape(short(owner, 24))}"
                )
            if len(procs) > 2:
                lines.append(f"[dim]and {len(procs) - 2} more[/dim]")
            text = "\n".join(lines)
        set_text(self.query_one(".gpu-procs", Static), text)


class HostPanel(Vertical):
    """The host's CPU and RAM, and the processes the runner watches."""

    def __init__(self) -> None:
        super().__init__(classes="host-panel panel", id="host-panel")

    def compose(self) -> ComposeResult:
        yield Static("[b]host[/b]", classes="panel-title")
        yield _Series("cpu", classes="m-cpu")
        yield _Series("ram", classes="m-ram")
        yield Static("", classes="host-procs")

    def show(self, host: HostView | None) -> None:
        """Take a host sample (None: not known yet)."""
        if host is None:
            set_text(self.query_one(".host-procs", Static), "[dim]no host data yet[/dim]")
            return
        set_text(
            self.query_one(".panel-title", Static),
            f"[b]host[/b]  {host['cpu_count']} CPUs, {gib(host['memory_total'])} GiB",
        )
        self.query_one(".m-cpu", _Series).push(host["cpu_percent"], percent(host["cpu_percent"]))
        self.query_one(".m-ram", _Series).push(
            host["memory_percent"], f"{gib(host['memory_used'])}/{gib(host['memory_total'])} GiB"
        )
        procs = host.get("processes") or []
        set_text(
            self.query_one(".host-procs", Static),
            "\n".join(
                f"{escape(short(p['name'], 16)):<16} {gib(p['rss']):>5} GiB "
                f"{p['cpu_percent']:>4.0f} %"
                for p in procs
            )
            or "[dim]no watched processes[/dim]",
        )


class GpuPanels(Widget):
    """The GPU screen."""

    def __init__(self) -> None:
        super().__init__(id="gpu")
        self.panels: dict[str, GpuPanel] = {}
        self.note = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="gpu-note", classes="hint")
        with VerticalScroll(id="gpu-scroll"):
            yield HostPanel()  # first: small, and in view without scrolling past 8 GPUs
            yield Grid(id="gpu-grid")

    async def show(self, view: GpuView) -> None:
        """Take a sample: panels are made when the set of GPUs changes, else updated."""
        watched = view.host.get("processes", []) if view.host else []
        owners = {int(p["pid"]): str(p["name"]) for p in watched}
        uuids = [g["uuid"] for g in view.gpus]
        if uuids != list(self.panels):
            grid = self.query_one("#gpu-grid", Grid)
            await grid.remove_children()  # before mounting: the new panels reuse the ids
            self.panels = {g["uuid"]: GpuPanel(g, owners) for g in view.gpus}
            await grid.mount_all(self.panels.values())
            grid.display = bool(self.panels)
        else:
            for gpu in view.gpus:
                self.panels[gpu["uuid"]].show(gpu, owners)
        self.query_one(HostPanel).show(view.host)
        if view.gpus:
            note = f"{len(view.gpus)} GPU(s)" + (f"; {view.note}" if view.note else "")
        else:
            note = f"No GPU to show: {view.note or 'no GPU data'}. The host panel is below."
        self.note = note
        set_text(self.query_one("#gpu-note", Static), escape(note))
