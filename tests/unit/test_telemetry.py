"""Telemetry against recorded NVML answers (tests/fakes/nvml.py), the real bindings where they
are (marked ``gpu`` when a GPU is needed), and the host through psutil."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import pytest

from edge_runner.telemetry import GpuReader, HostReader, Sample, Sampler, gpu_summary
from tests.conftest import MS, wait_for
from tests.fakes.nvml import FakeNvml


@pytest.fixture
def nvml(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    """The recording named by the test's parameter, installed as ``pynvml``."""
    fake = FakeNvml.load(request.param)
    monkeypatch.setitem(sys.modules, "pynvml", fake)  # type: ignore[arg-type]
    yield fake


@pytest.mark.parametrize("nvml", ["one_gpu"], indirect=True)
def test_one_gpu_reads_every_field_and_labels_our_process(nvml: FakeNvml) -> None:
    """Name, UUID, memory, utilisation, temperature, power in watts; our pid is labelled."""
    report = GpuReader(owners={4242: "runner r1 (hello)"}).read()
    assert report.note == "" and report.driver == "560.35.03"
    (gpu,) = report.gpus
    assert (gpu.index, gpu.name, gpu.uuid) == (0, "NVIDIA H200", nvml.gpus[0]["uuid"])
    assert gpu.memory_total == 143771 * 2**20 and gpu.memory_used == 2601 * 2**20
    assert gpu.memory_used + gpu.memory_free == gpu.memory_total
    assert (gpu.utilization, gpu.memory_utilization, gpu.temperature) == (12, 3, 34)
    assert (gpu.power_draw, gpu.power_limit) == (115.0, 700.0)
    assert [(p.pid, p.used_memory, p.owner) for p in gpu.processes] == [
        (4242, 2048 * 2**20, "runner r1 (hello)")
    ]


@pytest.mark.parametrize("nvml", ["eight_gpus"], indirect=True)
def test_eight_gpus_and_their_summary(nvml: FakeNvml) -> None:
    """Eight GPUs in index order; the summary averages utilisation and sums memory."""
    report = GpuReader().read()
    assert [g.index for g in report.gpus] == list(range(8))
    summary = gpu_summary(report)
    assert summary["count"] == 8 and summary["utilization"] == round(285 / 8)
    assert summary["memory_total"] == 8 * 81920 * 2**20


@pytest.mark.parametrize("nvml", ["mig"], indirect=True)
def test_mig_gives_memory_without_utilisation_and_says_why(nvml: FakeNvml) -> None:
    """In MIG mode utilisation and processes are absent, and the note says so."""
    report = GpuReader().read()
    (gpu,) = report.gpus
    assert gpu.mig and gpu.utilization is None and gpu.processes == ()
    assert gpu.memory_used == 10240 * 2**20
    assert "MIG is on for GPU 0" in report.note


@pytest.mark.parametrize(
    ("nvml", "note"),
    [
        ("no_gpu", "no GPU data: no NVIDIA GPU found"),
        ("driver_mismatch", "no GPU data: NVIDIA driver/library version mismatch"),
    ],
    indirect=["nvml"],
)
def test_no_gpu_and_a_driver_mismatch_degrade_to_a_note(nvml: FakeNvml, note: str) -> None:
    """No GPU, or nvmlInit failing: an empty report with the reason, never an exception."""
    reader = GpuReader()
    for _ in range(3):
        report = reader.read()
        assert report.gpus == () and report.note.startswith(note)
    assert nvml.calls.count("nvmlInit") == 1  # a failed init is not retried every second


@pytest.mark.parametrize("nvml", ["gpu_lost"], indirect=True)
def test_a_lost_gpu_is_a_note_and_the_others_are_read(nvml: FakeNvml) -> None:
    """GPU_IS_LOST on one GPU: the other is read; unsupported power is None."""
    report = GpuReader().read()
    assert [g.index for g in report.gpus] == [0]
    assert report.gpus[0].name == "Tesla T4" and report.gpus[0].power_draw is None
    assert "GPU 1 cannot be read: it fell off the bus" in report.note


@pytest.mark.parametrize("nvml", ["one_gpu"], indirect=True)
def test_static_fields_are_cached_dynamic_ones_are_not(nvml: FakeNvml) -> None:
    """Name and total memory are read once per TTL; memory in use on every read."""
    reader = GpuReader(static_ttl=3600)
    reader.read()
    nvml.gpus[0]["name"] = "renamed"
    nvml.gpus[0]["memory"] = {**nvml.gpus[0]["memory"], "used": 5, "free": 6}
    again = reader.read().gpus[0]
    assert again.name == "NVIDIA H200" and again.memory_used == 5
    assert GpuReader(static_ttl=0).read().gpus[0].name == "renamed"


def test_missing_bindings_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nvidia-ml-py the note gives the pip line (or says AMD/Apple are not read)."""
    monkeypatch.setitem(sys.modules, "pynvml", None)  # type: ignore[arg-type]
    note = GpuReader().read().note
    assert note.startswith("no GPU data:")
    assert "pip install 'edge-runner[gpu]'" in note or "not read" in note


def test_the_real_bindings_here_degrade_or_read() -> None:
    """The installed nvidia-ml-py: with no driver a note; with one, sane values."""
    pynvml = pytest.importorskip("pynvml")
    del pynvml
    report = GpuReader().read()
    if not report.gpus:
        assert report.note.startswith("no GPU data:")
        return
    _check_sane(report.gpus)


@pytest.mark.gpu
def test_real_gpus_read_sanely() -> None:
    """On a machine with an NVIDIA GPU: every GPU reads, with values in range."""
    report = GpuReader().read()
    if not report.gpus:
        pytest.skip(f"no NVIDIA GPU here ({report.note})")
    _check_sane(report.gpus)


def _check_sane(gpus: tuple[object, ...]) -> None:
    for gpu in gpus:
        assert gpu.memory_total > 0 and 0 <= gpu.memory_used <= gpu.memory_total  # type: ignore[attr-defined]
        assert gpu.uuid.startswith(("GPU-", "MIG-"))  # type: ignore[attr-defined]
        util = gpu.utilization  # type: ignore[attr-defined]
        assert util is None or 0 <= util <= 100


def test_host_reader_reports_watched_processes() -> None:
    """CPU, memory and disk of the host; RSS of a watched pid; a dead pid is left out."""
    reader = HostReader("/nonexistent/data/dir", watch={"me": os.getpid(), "gone": 2**22 + 7})
    sample = reader.read()
    assert sample.cpu_count >= 1 and 0 < sample.memory_used < sample.memory_total
    assert sample.disk_total > 0  # the nearest existing parent's file system
    (me,) = sample.processes
    assert me.name == "me" and me.pid == os.getpid() and me.rss > 0


@pytest.mark.parametrize("nvml", ["one_gpu"], indirect=True)
def test_sampler_feeds_listeners_and_survives_a_broken_one(nvml: FakeNvml) -> None:
    """The thread samples on its interval; a listener that raises does not stop it."""
    seen: list[Sample] = []
    enough = threading.Event()

    def broken(sample: Sample) -> None:
        raise RuntimeError("display gone")

    def good(sample: Sample) -> None:
        seen.append(sample)
        if len(seen) >= 3:
            enough.set()

    sampler = Sampler(GpuReader(), HostReader(), interval=10 * MS)
    sampler.add_listener(broken)
    sampler.add_listener(good)
    sampler.start()
    try:
        wait_for(enough.is_set, "three samples")
    finally:
        sampler.stop()
    assert sampler.latest.gpu.gpus[0].name == "NVIDIA H200"
    assert seen[-1].to_dict()["host"]["cpu_count"] >= 1
    assert not nvml.initialized  # stop() shut NVML down
