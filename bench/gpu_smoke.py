"""GPU smoke check, for a machine with an NVIDIA GPU: real NVML, placement, PyTorch on CUDA.

1. NVML: every GPU reads with sane values (memory, utilisation, temperature, power, processes).
2. Placement: ``num_accelerators: 1`` picks the GPU with the most free memory; ``0`` hides all.
3. The tiny-gpt example through the whole path (control plane + tunnel + runner process) with
   ``num_accelerators: 1``: the model reports ``cuda:0`` and the GPU it was placed on, streams
   tokens, and the runner's GPU shows in ``/v2/runners``, its process labelled ours.

Prints one line per check and a JSON summary; exit 0 when all pass, 1 when one fails, 2 when
this machine has no NVIDIA GPU (the reason printed). Needs ``nvidia-ml-py`` and torch with CUDA.

    .venv/bin/python bench/gpu_smoke.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import spawn_ready

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_runner.models.compute import ComputeInfo  # noqa: E402 - after the path
from edge_runner.runner.placement import place  # noqa: E402
from edge_runner.telemetry import GpuReader  # noqa: E402

RESULTS: dict[str, Any] = {}


def check(name: str, ok: bool, detail: str) -> bool:
    """Record and print one check."""
    RESULTS[name] = {"ok": ok, "detail": detail}
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return ok


def nvml() -> Any:
    report = GpuReader().read()
    if not report.gpus:
        print(f"SKIP  no NVIDIA GPU here: {report.note}")
        sys.exit(2)
    for g in report.gpus:
        sane = (
            g.memory_total > 0
            and 0 <= g.memory_used <= g.memory_total
            and (g.utilization is None or 0 <= g.utilization <= 100)
            and g.uuid.startswith(("GPU-", "MIG-"))
        )
        check(
            f"nvml gpu {g.index}",
            sane,
            f"{g.name} {g.uuid} mem {g.memory_used / 2**30:.1f}/{g.memory_total / 2**30:.1f} GiB "
            f"util {g.utilization} % temp {g.temperature} C power {g.power_draw}/{g.power_limit} W "
            f"processes {len(g.processes)} (driver {report.driver})",
        )
    return report


def placement(report: Any) -> None:
    best = max(report.gpus, key=lambda g: (g.memory_free, -g.index))
    one = place(ComputeInfo(num_accelerators=1), report)
    check(
        "placement 1 GPU",
        [g.index for g in one.gpus] == [best.index] and one.visible == best.uuid,
        f"chose GPU {[g.index for g in one.gpus]} ({one.reason})",
    )
    none = place(ComputeInfo(num_accelerators=0), report)
    check("placement 0 GPUs", none.visible == "", f"CUDA_VISIBLE_DEVICES={none.visible!r}")


def example_on_cuda(report: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="edge-gpu-") as home:
        folder = Path(home) / "tiny-gpt"
        shutil.copytree(ROOT / "examples" / "tiny-gpt", folder)
        config = folder / "config.yaml"
        config.write_text(
            config.read_text().replace(
                "  accelerator_type:", "  num_accelerators: 1\n  accelerator_type:"
            )
        )
        env = dict(os.environ, EDGE_RUNNER_HOME=home, EDGE_RUNNER_SECRET_BACKEND="file")
        env.pop("EDGE_RUNNER_PAT", None)
        control, info = spawn_ready(
            ["control", "--port", "0", "--grpc-port", "0", "--heartbeat-interval", "0.5"], env
        )
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        runner = None
        try:
            started = time.monotonic()
            runner, _ = spawn_ready(["runner", str(folder)], runner_env)
            http = httpx.Client(
                base_url=info["api_base"], headers={"Authorization": f"Bearer {token}"}, timeout=120
            )
            ready_s = time.monotonic() - started
            model = http.post("/v2/models/tiny-gpt/info", json={}).json()["output"]
            check(
                "torch on cuda",
                str(model["device"]).startswith("cuda:0"),
                f"{model} (ready in {ready_s:.1f} s)",
            )
            t0 = time.perf_counter()
            body = {"prompt": "A runner ", "max_tokens": 400}
            text = http.post("/v2/models/tiny-gpt/predict", json=body).json()["output"]
            rate = len(text) / (time.perf_counter() - t0)
            check("generate on cuda", len(text) == 400, f"{len(text)} tokens, {rate:.0f} tokens/s")
            time.sleep(1.5)  # a heartbeat with the GPU samples
            runners = http.get("/v2/runners").json()["runners"]
            gpus = runners[0].get("gpus", [])
            assigned = [g for g in gpus if g.get("assigned")]
            check(
                "runner gpus in /v2/runners",
                len(assigned) == 1,
                json.dumps(assigned),
            )
            after = GpuReader(owners={runner.pid: "the smoke runner"}).read()
            ours = [p for g in after.gpus for p in g.processes if p.owner]
            check("runner process on the GPU", bool(ours), f"{ours}")
        finally:
            for proc in (runner, control):
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (runner, control):
                if proc is not None:
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
    args = parser.parse_args()
    report = nvml()
    placement(report)
    example_on_cuda(report)
    if args.json:
        print(json.dumps(RESULTS, indent=2))
    return 0 if all(r["ok"] for r in RESULTS.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
