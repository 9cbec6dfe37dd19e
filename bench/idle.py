"""An idle runner's footprint: resident memory and CPU with telemetry at 1 Hz.

Starts ``edge-runner control`` and ``edge-runner runner examples/hello`` on 127.0.0.1 with a
throwaway ``EDGE_RUNNER_HOME``, waits ``--warmup`` seconds, then reads the runner's RSS and CPU
time (``/proc/<pid>/stat``) over ``--seconds``. Nothing calls the model: this is what the
daemon costs while it waits (heartbeats every 5 s, telemetry every 1 s, the local API open).

``--nvml fake`` puts the recorded-answers NVML (tests/fakes/nvml_shim, one H200) under the
runner, so the sampler does a GPU's worth of work; ``--nvml real`` uses whatever this machine
has (no driver: the sampler only retries NVML's init every 30 s).

    .venv/bin/python bench/idle.py                      # 60 s, fake NVML
    .venv/bin/python bench/idle.py --seconds 120 --nvml real

A benchmark, not a test. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_seconds, rss_mib, spawn_ready, stop_all

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring (default 5)")
    parser.add_argument("--nvml", choices=("fake", "real"), default="fake")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-idle-") as home:
        env = dict(os.environ, EDGE_RUNNER_HOME=home, EDGE_RUNNER_SECRET_BACKEND="file")
        env.pop("EDGE_RUNNER_PAT", None)
        control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0"], env)
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        if args.nvml == "fake":
            runner_env["PYTHONPATH"] = str(ROOT / "tests" / "fakes" / "nvml_shim")
            runner_env["FAKE_NVML"] = "one_gpu"
        runner, _ = spawn_ready(["runner", str(ROOT / "examples" / "hello")], runner_env)
        try:
            time.sleep(args.warmup)
            cpu0, t0 = cpu_seconds(runner.pid), time.monotonic()
            rss = []
            while time.monotonic() - t0 < args.seconds:
                rss.append(rss_mib(runner.pid))
                time.sleep(1.0)
            cpu = (cpu_seconds(runner.pid) - cpu0) / (time.monotonic() - t0) * 100
            control_rss = rss_mib(control.pid)
        finally:
            stop_all((runner, control))
    result = {
        "seconds": args.seconds,
        "nvml": args.nvml,
        "runner_rss_mib_max": round(max(rss), 1),
        "runner_rss_mib_last": round(rss[-1], 1),
        "runner_cpu_pct_of_one_core": round(cpu, 3),
        "control_rss_mib": round(control_rss, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"idle runner (hello, NVML {args.nvml}, {args.seconds:g} s): "
            f"RSS {result['runner_rss_mib_max']} MiB max, "
            f"CPU {result['runner_cpu_pct_of_one_core']} % of one core; "
            f"control plane RSS {result['control_rss_mib']} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
