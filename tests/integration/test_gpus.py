"""GPUs end to end with recorded NVML answers: placement of a real runner process, GPU samples
on heartbeats in /v2/runners, and `edge-runner gpus` (tests/fakes/nvml.py; no GPU here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_runner.client import Client
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.telemetry import GpuReader, Sampler
from tests.conftest import (
    HELLO,
    MS,
    ROOT,
    LoopThread,
    Stack,
    spawn_ready,
    stop_process,
    wait_for,
    write_model,
)
from tests.fakes.nvml import FakeNvml

SHIM = ROOT / "tests" / "fakes" / "nvml_shim"
VISIBLE_MODEL = (
    "    @ModelClass.method\n"
    "    def visible(self) -> str:\n"
    "        '''What CUDA would see.'''\n"
    "        import os\n"
    "        return os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>') + '|' + "
    "os.environ.get('CUDA_DEVICE_ORDER', '')\n"
)


@pytest.fixture
def fast_stack(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Stack]:
    """A control plane that asks for heartbeats every 50 ms (GPU samples ride on them)."""
    stack = Stack(tmp_path / "control", loop_thread, model=HELLO)
    stack.start_control(heartbeat_interval=50 * MS, silence_timeout=5_000 * MS)
    yield stack
    stack.close()


def _gpu_env(stack: Stack, recording: str) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
        FAKE_NVML=recording,
        EDGE_RUNNER_API_BASE=stack.api_base,
        EDGE_RUNNER_PAT=stack.token,
    )


def _folder(tmp_path: Path, compute: str) -> Path:
    folder = write_model(tmp_path, "gpu-model", VISIBLE_MODEL)
    config = folder / "config.yaml"
    config.write_text(config.read_text() + f"inference_compute_info: {compute}\n")
    return folder


def test_heartbeats_carry_the_gpus_into_v2_runners(
    fast_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/v2/runners shows every GPU of the runner's machine, live, its own ones marked."""
    fake = FakeNvml.load("eight_gpus")
    monkeypatch.setitem(sys.modules, "pynvml", fake)  # type: ignore[arg-type]
    sampler = Sampler(GpuReader(), interval=20 * MS)
    placed = (pb.Gpu(index=3, uuid=fake.gpus[3]["uuid"], name="NVIDIA A100-SXM4-80GB"),)
    fast_stack.start_runner(sampler=sampler, gpus=placed)

    def gpus() -> list[dict[str, object]]:
        with Client(fast_stack.api_base, fast_stack.token) as client:
            return list(client.runners()[0].get("gpus") or [])

    wait_for(lambda: len(gpus()) == 8 and gpus()[0].get("utilization") is not None, "samples")
    view = gpus()
    assert [g["utilization"] for g in view] == [97, 0, 55, 0, 100, 2, 31, 0]
    assert [g["assigned"] for g in view] == [i == 3 for i in range(8)]
    assert view[3]["name"] == "NVIDIA A100-SXM4-80GB"
    fake.gpus[1]["utilization"] = {"gpu": 64, "memory": 10}  # the next sample shows it
    wait_for(lambda: gpus()[1]["utilization"] == 64, "a fresh sample")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("compute", "extra", "expected"),
    [
        ("{num_accelerators: 1, accelerator_memory: 40Gi}", [], [1]),
        ("{num_accelerators: 2, accelerator_type: ['NVIDIA-A100*']}", [], [1, 3]),
        ("{num_accelerators: 1}", ["--gpus", "6"], [6]),
        ("{num_accelerators: 0}", [], []),
    ],
)
def test_a_runner_process_sees_only_its_placed_gpus(
    stack: Stack, tmp_path: Path, compute: str, extra: list[str], expected: list[int]
) -> None:
    """CUDA_VISIBLE_DEVICES (by UUID, PCI order) is set before the model loads; the placed
    GPUs are registered with the control plane."""
    fake = FakeNvml.load("eight_gpus")
    proc, ready = spawn_ready(
        ["runner", str(_folder(tmp_path, compute)), *extra], _gpu_env(stack, "eight_gpus")
    )
    try:
        with Client(stack.api_base, stack.token) as client:
            visible, order = str(client.predict("gpu-model", "visible")).split("|")
            runner = client.runners()[0]
    finally:
        stop_process(proc)
    assert visible == ",".join(fake.gpus[i]["uuid"] for i in expected)
    assert order == "PCI_BUS_ID"
    assert [g["index"] for g in runner["gpus"] if g["assigned"]] == expected
    del ready


@pytest.mark.slow
def test_nothing_fits_is_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    """A folder asking for GPUs this machine lacks: exit 2, what was asked and what exists."""
    folder = _folder(tmp_path, "{num_accelerators: 2, accelerator_type: ['NVIDIA-H100*']}")
    result = subprocess.run(
        [sys.executable, "-m", "edge_runner", "runner", str(folder)],
        capture_output=True,
        text=True,
        env=_gpu_env(stack, "eight_gpus"),
        timeout=30_000 * MS,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "asks for 2 GPUs of type NVIDIA-H100*" in line and "GPU 7 NVIDIA A100-SXM4-80GB" in line


@pytest.mark.slow
def test_gpus_command_table_and_json(stack: Stack) -> None:
    """`edge-runner gpus` prints the table, -o json the report; no driver: the note."""
    env = _gpu_env(stack, "one_gpu")
    table = subprocess.run(
        [sys.executable, "-m", "edge_runner", "gpus"], capture_output=True, text=True, env=env
    )
    assert table.returncode == 0 and "NVIDIA H200" in table.stdout and "12 %" in table.stdout
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "edge_runner", "gpus", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    )
    assert doc["gpus"][0]["uuid"].startswith("GPU-") and doc["host"]["cpu_count"] >= 1
    mismatch = subprocess.run(
        [sys.executable, "-m", "edge_runner", "gpus"],
        capture_output=True,
        text=True,
        env=_gpu_env(stack, "driver_mismatch"),
    )
    assert mismatch.returncode == 0 and "version mismatch" in mismatch.stdout
