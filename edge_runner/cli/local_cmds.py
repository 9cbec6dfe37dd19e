"""``edge-runner status`` and ``edge-runner logs``: a local runner, through its local API."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING

from edge_runner.cli.output import add_output_option, ago, print_json, print_table
from edge_runner.errors import ConfigError
from edge_runner.views import LogRecordView

if TYPE_CHECKING:
    from edge_runner.local_client import LocalClient

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status`` and ``logs``."""
    status = sub.add_parser(
        "status",
        help="show a local runner: tunnel, models, slots, tasks in flight, GPUs",
        description="Ask a runner on this machine for its state (through its local API).",
    )
    status.add_argument("--runner", metavar="ID", help="which runner, when several run here")
    add_output_option(status)
    status.set_defaults(func=_status)
    logs = sub.add_parser(
        "logs",
        help="print a local runner's recent logs, or follow them (-f)",
        description="Print the last log records of a runner on this machine; -f follows.",
    )
    logs.add_argument("--runner", metavar="ID", help="which runner, when several run here")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    logs.add_argument("-n", "--lines", type=int, default=100, help="how many to start with")
    logs.add_argument("--level", help="only this level and above (debug, info, warning, error)")
    logs.add_argument("--grep", metavar="TEXT", help="only records containing TEXT")
    logs.set_defaults(func=_logs)


def _client(runner_id: str | None) -> LocalClient:
    from edge_runner.local_client import LocalClient

    return LocalClient.find(runner_id)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _status(args: argparse.Namespace) -> int:
    with _client(args.runner) as client:
        snap = client.snapshot()
    if args.output == "json":
        print_json(snap)
        return 0
    tunnel = snap["tunnel"]
    since = tunnel.get("connected_since")
    print(f"runner     {snap['runner_id']} (pid {snap['pid']}, edge-runner {snap['version']})")
    state = tunnel["state"] + (f" for {ago(since).removesuffix(' ago')}" if since else "")
    print(f"tunnel     {state} to {snap['api_base']} over {snap['transport']}")
    print(
        f"           {tunnel['reconnects']} reconnect(s)"
        + (f"; last error: {tunnel['last_error']}" if tunnel.get("last_error") else "")
    )
    print(f"slots      {snap['busy']}/{snap['pool_size']} busy")
    print("models")
    print_table(
        ("  MODEL", "BACKEND", "STATUS", "MESSAGE"),
        [
            (
                f"  {m['id']}",
                m["backend"],
                m["status"],
                m["message"] if m["status"] != "ready" else "",
            )
            for m in snap["models"]
        ],
    )
    if snap["tasks"]:
        print("tasks in flight")
        print_table(
            ("  TASK", "MODEL", "METHOD", "AGE", "QUEUED"),
            [
                (
                    f"  {t['task_id'][:12]}",
                    t["model"],
                    t["method"],
                    f"{t['age_s']:.1f} s",
                    f"{t['queue_wait_s'] * 1000:.0f} ms",
                )
                for t in snap["tasks"]
            ],
        )
    telemetry = snap.get("telemetry")
    gpu = telemetry.get("gpu") if telemetry else None
    for g in gpu.get("gpus", []) if gpu else []:
        util = "-" if g["utilization"] is None else f"{g['utilization']} %"
        print(
            f"GPU {g['index']}      {g['name']}: {util}, {_gib(g['memory_used'])} of "
            f"{_gib(g['memory_total'])}"
        )
    if gpu and gpu.get("note"):
        print(f"GPUs       {gpu['note']}")
    return 0


def _line(record: LogRecordView) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(record["time"]))
    millis = int((record["time"] % 1) * 1000)
    task = f" [{record['task_id'][:12]}]" if record.get("task_id") else ""
    return (
        f"{stamp}.{millis:03d} {record['level']:<7} {record['logger']}{task}: {record['message']}"
    )


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ConfigError(f"--level {name!r}: use debug, info, warning or error")
    return value


def _logs(args: argparse.Namespace) -> int:
    level = _level(args.level) if args.level else 0
    grep = (args.grep or "").lower()
    with _client(args.runner) as client:
        for record in client.logs(limit=args.lines, level=args.level, grep=args.grep):
            print(_line(record))
        sys.stdout.flush()
        if not args.follow:
            return 0
        for event in client.events({"log"}):
            if event["topic"] == "dropped":
                print(f"... {event['data']['count']} record(s) dropped (too fast to follow)")
                continue
            if event["topic"] != "log":
                continue
            record = event["data"]
            text = f"{record['logger']} {record['message']}".lower()
            if _level(record["level"]) < level or (grep and grep not in text):
                continue
            print(_line(record), flush=True)
    return 0
