"""``edge-runner gpus``: this machine's GPUs (NVML) and host, as a table or JSON."""

from __future__ import annotations

import argparse

import psutil

from edge_runner.cli.output import add_output_option, print_json, print_table
from edge_runner.views import MachineGpusView

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gpus``."""
    gpus = sub.add_parser(
        "gpus",
        help="show this machine's GPUs: memory, utilisation, temperature, power, processes",
        description="Read this machine's NVIDIA GPUs through NVML (pip install "
        "'edge-runner[gpu]') and its CPU and memory; -o json for scripts.",
    )
    add_output_option(gpus)
    gpus.set_defaults(func=_gpus)


def _owners(pids: set[int]) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            cmdline = " ".join(proc.cmdline()[:4])
            ours = "edge_runner" in cmdline or "edge-runner" in cmdline
            out[pid] = "edge-runner" if ours else proc.name()
        except psutil.Error:
            out[pid] = "?"
    return out


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f}"


def _gpus(args: argparse.Namespace) -> int:
    from edge_runner.config.paths import data_dir
    from edge_runner.telemetry import GpuReader, HostReader

    reader = GpuReader(owners=lambda: {})
    report = reader.read()
    owners = _owners({p.pid for g in report.gpus for p in g.processes})
    host = HostReader(data_dir()).read()
    reader.close()
    if args.output == "json":
        doc: MachineGpusView = {**report.to_dict(), "host": host.to_dict()}
        for gpu in doc["gpus"]:
            for proc in gpu["processes"]:
                proc["owner"] = proc["owner"] or owners.get(proc["pid"], "")
        print_json(doc)
        return 0
    rows = []
    for g in report.gpus:
        procs = ", ".join(
            f"{p.pid} {owners.get(p.pid, '')} {_gib(p.used_memory)} GiB".replace("  ", " ")
            for p in g.processes
        )
        rows.append(
            (
                g.index,
                g.name,
                "-" if g.utilization is None else f"{g.utilization} %",
                f"{_gib(g.memory_used)}/{_gib(g.memory_total)} GiB",
                "-" if g.temperature is None else f"{g.temperature} C",
                "-" if g.power_draw is None else f"{g.power_draw:.0f}/{g.power_limit or 0:.0f} W",
                procs or "-",
            )
        )
    if rows:
        print_table(("GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "PROCESSES"), rows)
    if report.note:
        print(report.note)
    print(
        f"host: {host.cpu_count} CPUs at {host.cpu_percent:.0f} %, memory "
        f"{_gib(host.memory_used)}/{_gib(host.memory_total)} GiB, disk {host.disk_path} "
        f"{_gib(host.disk_used)}/{_gib(host.disk_total)} GiB"
        + (f", NVIDIA driver {report.driver}" if report.driver else "")
    )
    return 0
