"""The dashboard's cost: CPU and RSS at the default refresh, and whether it keeps up with a log
flood of 200 lines/s.

Starts ``edge-runner control`` and a runner of ``bench/models/chatty`` (recorded-answers NVML,
one GPU, sampled at 1 Hz) on 127.0.0.1 with a throwaway ``EDGE_RUNNER_HOME`` and a `bench`
context, then ``python -m edge_runner_tui`` in a real pseudo-terminal (160x48 by default) whose
output this script reads and throws away, as a terminal would. Three phases:

1. idle on the Overview, ``--seconds`` (60): the budget is <= 3 % of one core, <= 120 MB RSS;
2. idle on the GPU screen (its charts redraw every second), ``--seconds / 3``;
3. the Logs screen while the model logs 200 lines/s (``--rate``): CPU, and the lag between a
   line being logged and it appearing on the terminal (its number is parsed from the output).

    .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --seconds 20 --rate 500 --json

A benchmark, not a test. Loopback only.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

from common import cpu_seconds, rss_mib, spawn_ready, stop_all

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(rb"line (\d+) of the flood")


class Terminal:
    """``python -m edge_runner_tui`` in a pty of ``cols`` x ``rows``; its output is read and
    dropped, and the highest flood line number seen is kept with the time it was seen."""

    def __init__(self, env: dict[str, str], cols: int, rows: int) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the dashboard
            os.execvpe(sys.executable, [sys.executable, "-m", "edge_runner_tui"], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.bytes = 0
        self.seen: list[tuple[float, int]] = []
        self._tail = b""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            self.bytes += len(chunk)
            data = self._tail + chunk
            numbers = [int(m) for m in LINE.findall(data)]
            if numbers:
                self.seen.append((now, max(numbers)))
            self._tail = data[-64:]

    def press(self, key: str) -> None:
        """Type a key."""
        os.write(self.fd, key.encode())

    def stop(self) -> None:
        """Quit with q, then make sure."""
        self.press("q")
        for _ in range(100):
            done, _status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def _measure(pid: int, seconds: float) -> dict[str, float]:
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    rss = []
    while time.monotonic() - t0 < seconds:
        rss.append(rss_mib(pid))
        time.sleep(0.5)
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    return {"cpu_pct_of_one_core": round(cpu, 2), "rss_mib_max": round(max(rss), 1)}


def main() -> int:
    """Run and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle phase (default 60)")
    parser.add_argument("--rate", type=float, default=200.0, help="log lines/s (default 200)")
    parser.add_argument("--flood-seconds", type=float, default=30.0)
    parser.add_argument("--size", default="160x48", help="terminal COLSxROWS (default 160x48)")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="also record the idle Overview phase with py-spy (pip install py-spy) to PATH, "
        "collapsed stacks: where the time goes",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    result: dict[str, Any] = {"size": args.size, "rate": args.rate}
    with tempfile.TemporaryDirectory(prefix="edge-dash-") as home:
        env = dict(os.environ, EDGE_RUNNER_HOME=home, EDGE_RUNNER_SECRET_BACKEND="file")
        for name in ("EDGE_RUNNER_PAT", "EDGE_RUNNER_API_BASE", "EDGE_RUNNER_CONTEXT"):
            env.pop(name, None)
        control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0"], env)
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(
            env,
            EDGE_RUNNER_API_BASE=info["api_base"],
            EDGE_RUNNER_PAT=token,
            PYTHONPATH=str(ROOT / "tests" / "fakes" / "nvml_shim"),
            FAKE_NVML="one_gpu",
        )
        model = ROOT / "bench" / "models" / "chatty"
        runner, _ = spawn_ready(["runner", str(model), "--pool-size", "4"], runner_env)
        # the `bench` context, token in the (0600 file) secret store, as `edge-runner login` does
        os.environ.update(EDGE_RUNNER_HOME=home, EDGE_RUNNER_SECRET_BACKEND="file")
        sys.path.insert(0, str(ROOT))
        from edge_runner.client import Client
        from edge_runner.config.contexts import Context, ContextsFile
        from edge_runner.config.secrets import secret_store

        contexts = ContextsFile.load()
        contexts.put(Context("bench", info["api_base"], "local"), make_current=True)
        secret_store().set("bench", token)
        contexts.save()
        term = Terminal(dict(env, TERM="xterm-256color", COLORTERM="truecolor"), cols, rows)
        try:
            time.sleep(5.0)  # start-up, first refresh
            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(term.pid),
                        "--duration",
                        str(int(args.seconds)),
                        "--format",
                        "raw",
                        "--output",
                        args.profile,
                        "--nonblocking",
                        "--idle",
                    ],
                    stdout=subprocess.DEVNULL,
                )
            result["idle_overview"] = _measure(term.pid, args.seconds)
            if spy is not None:
                spy.wait()
            term.press("6")
            result["idle_gpu"] = _measure(term.pid, args.seconds / 3)
            term.press("5")
            time.sleep(1.0)
            with Client(info["api_base"], token, timeout=args.flood_seconds + 30) as client:
                started = time.monotonic()
                caller = threading.Thread(
                    target=client.predict,
                    args=("chatty", "chatter"),
                    kwargs={"rate": args.rate, "seconds": args.flood_seconds},
                )
                caller.start()
                flood = _measure(term.pid, args.flood_seconds)
                caller.join()
                time.sleep(3.0)  # let the last lines arrive
            lags = sorted(
                at - (started + (number + 1) / args.rate)
                for at, number in term.seen
                if at >= started
            )
            sent = int(args.flood_seconds * args.rate)
            last = max((n for _, n in term.seen), default=-1)
            flood.update(
                lines_sent=sent,
                last_line_shown=last,
                lag_s_p50=round(lags[len(lags) // 2], 3) if lags else None,
                lag_s_max=round(lags[-1], 3) if lags else None,
            )
            result["flood_logs"] = flood
            result["terminal_bytes"] = term.bytes
        finally:
            term.stop()
            stop_all((runner, control))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        idle, gpu, flood = result["idle_overview"], result["idle_gpu"], result["flood_logs"]
        print(f"dashboard at {args.size}, one runner, one GPU (fake NVML):")
        print(
            f"  idle, Overview  {idle['cpu_pct_of_one_core']:6.2f} % CPU  {idle['rss_mib_max']} MiB"
        )
        print(
            f"  idle, GPU       {gpu['cpu_pct_of_one_core']:6.2f} % CPU  {gpu['rss_mib_max']} MiB"
        )
        print(
            f"  {args.rate:g} lines/s  {flood['cpu_pct_of_one_core']:6.2f} % CPU  "
            f"{flood['rss_mib_max']} MiB; shown up to line {flood['last_line_shown']} of "
            f"{flood['lines_sent']}, lag p50 {flood['lag_s_p50']} s, max {flood['lag_s_max']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
