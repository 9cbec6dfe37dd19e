"""How long `edge-runner up` takes to be ready, and to stop on Ctrl-C with nothing in flight.

Usage: ``python bench/up_latency.py [--runs 5]``. Starts ``edge-runner up examples/hello`` on
free loopback ports in a temporary EDGE_RUNNER_HOME, waits for the banner, sends SIGINT, and
times both. A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(home: Path) -> tuple[float, float]:
    """Return (seconds until the banner, seconds from SIGINT to exit)."""
    env = dict(os.environ, EDGE_RUNNER_HOME=str(home), EDGE_RUNNER_SECRET_BACKEND="file")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_runner",
            "up",
            str(ROOT / "examples" / "hello"),
            "--port",
            "0",
            "--grpc-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Ctrl-C" in line:
            break
    ready = time.perf_counter() - start
    stop = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(30)
    stopped = time.perf_counter() - stop
    if code != 0:
        raise SystemExit(f"edge-runner up exited with {code}")
    return ready, stopped


def main() -> int:
    """Run the measurement and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    readies, stops = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            ready, stopped = one_run(Path(tmp))  # the first run bootstraps; later ones reuse
            readies.append(ready)
            stops.append(stopped)
            print(
                f"run {i + 1}: ready {ready * 1000:.0f} ms, Ctrl-C to exit {stopped * 1000:.0f} ms"
            )
    print(
        f"median: ready {statistics.median(readies) * 1000:.0f} ms, "
        f"stop {statistics.median(stops) * 1000:.0f} ms (max {max(stops) * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
