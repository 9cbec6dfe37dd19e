"""inference_compute_info parsing and GPU placement: pure logic over recorded NVML answers."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge_runner.errors import ConfigError, ModelFolderError
from edge_runner.models.compute import ComputeInfo, parse_compute_info, parse_quantity
from edge_runner.models.config import load_config
from edge_runner.runner.placement import PlacementError, parse_gpus_option, place
from edge_runner.telemetry import GpuReader, GpuReport
from tests.fakes.nvml import FakeNvml

GiB = 2**30


def _report(name: str, monkeypatch: pytest.MonkeyPatch) -> GpuReport:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml.load(name))  # type: ignore[arg-type]
    return GpuReader().read()


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("24Gi", 24 * GiB),
        ("1500Mi", 1500 * 2**20),
        ("2G", 2 * 10**9),
        ("500m", Decimal("0.5")),
        ("1e3", 1000),
        ("1.5Gi", Decimal("1.5") * GiB),
        (1024, 1024),
        (2.5, Decimal("2.5")),
        (" 3Ki ", 3072),
    ],
)
def test_quantities_read_as_kubernetes_does(value: Any, number: Decimal | int) -> None:
    """Binary and decimal suffixes, milli, exponents and plain numbers."""
    assert parse_quantity(value, "f") == number


@pytest.mark.parametrize("value", ["24GB", "lots", "", "-1Gi", -5, True, None, [1], "1.2.3Gi"])
def test_bad_quantities_name_the_field(value: Any) -> None:
    """Anything else is a ModelFolderError naming the field and how to write it."""
    with pytest.raises(ModelFolderError, match=r"inference_compute_info\.accelerator_memory.*24Gi"):
        parse_quantity(value, "accelerator_memory", "m/config.yaml")


def test_compute_info_fields() -> None:
    """Every key parsed; a single type becomes a list; absent keys stay None."""
    info = parse_compute_info(
        {
            "num_accelerators": 2,
            "accelerator_type": "NVIDIA-A100*",
            "accelerator_memory": "40Gi",
            "cpu_limit": "500m",
            "cpu_memory": "8Gi",
        }
    )
    assert info == ComputeInfo(2, ("NVIDIA-A100*",), 40 * GiB, 0.5, 8 * GiB)
    assert parse_compute_info(None) == ComputeInfo()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"num_accelerators": -1}, "num_accelerators must be a whole number"),
        ({"num_accelerators": "2"}, "num_accelerators must be a whole number"),
        ({"num_accelerators": True}, "num_accelerators must be a whole number"),
        ({"accelerator_type": [3]}, "accelerator_type must be a list"),
        ({"cpu_memory": "8GB"}, "cpu_memory is '8GB'"),
        ("1 GPU", "must be a mapping"),
    ],
)
def test_bad_compute_info_names_the_field(raw: Any, fragment: str) -> None:
    """Wrong kinds of values are refused, naming the key."""
    with pytest.raises(ModelFolderError, match="config.yaml") as caught:
        parse_compute_info(raw)
    assert fragment in str(caught.value)


def test_unknown_keys_are_warned_about_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    """Another tool's key (or a typo) is named in a warning; the folder still loads."""
    parse_compute_info({"num_accelerator": 1, "cpu_limit": "1"})
    assert "num_accelerator" in caplog.text


def test_load_config_checks_compute_info(tmp_path: Path) -> None:
    """A bad quantity in config.yaml fails the folder with the file named."""
    (tmp_path / "config.yaml").write_text(
        "model: {id: m}\ninference_compute_info: {accelerator_memory: 24 GB}\n"
    )
    with pytest.raises(ModelFolderError, match=rf"{tmp_path}/config.yaml.*accelerator_memory"):
        load_config(tmp_path)


def test_not_asked_is_not_restricted_and_zero_hides_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """No num_accelerators: leave CUDA_VISIBLE_DEVICES alone; 0: hide every GPU."""
    report = _report("eight_gpus", monkeypatch)
    assert place(ComputeInfo(), report).visible is None
    hidden = place(ComputeInfo(num_accelerators=0), report)
    assert hidden.visible == "" and hidden.gpus == ()


def test_most_free_memory_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two GPUs: the two with the most free memory (ties by index), in index order."""
    report = _report("eight_gpus", monkeypatch)
    placed = place(ComputeInfo(num_accelerators=2), report)
    assert [g.index for g in placed.gpus] == [1, 3]
    assert placed.visible == f"{report.gpus[1].uuid},{report.gpus[3].uuid}"
    big = place(ComputeInfo(num_accelerators=5, accelerator_memory=10 * GiB), report)
    assert [g.index for g in big.gpus] == [1, 3, 5, 6, 7]


def test_type_patterns_match_dashed_names_case_insensitively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NVIDIA-* matches 'NVIDIA A100-SXM4-80GB' and 'Tesla T4'; a wrong type matches nothing."""
    eight = _report("eight_gpus", monkeypatch)
    assert place(ComputeInfo(1, ("nvidia-a100*",)), eight).gpus
    assert place(ComputeInfo(1, ("NVIDIA-*",)), _report("gpu_lost", monkeypatch)).gpus
    with pytest.raises(PlacementError) as caught:
        place(ComputeInfo(1, ("NVIDIA-H100*",)), eight)
    message = str(caught.value)
    assert "asks for 1 GPU of type NVIDIA-H100*" in message
    assert "GPU 0 NVIDIA A100-SXM4-80GB (11.6 GiB free of 80.0 GiB)" in message
    assert "(0 fit)" in message and "--gpus" in message


def test_not_enough_memory_or_no_gpu_says_what_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking more than there is names the ask and what the machine has (or why none)."""
    with pytest.raises(PlacementError, match="with 200.0 GiB free each") as caught:
        place(ComputeInfo(1, (), 200 * GiB), _report("one_gpu", monkeypatch))
    assert "NVIDIA H200" in str(caught.value)
    with pytest.raises(PlacementError, match="version mismatch"):
        place(ComputeInfo(num_accelerators=1), _report("driver_mismatch", monkeypatch))


def test_gpus_option_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """--gpus picks exactly those, 'none' hides all, an unknown index is refused."""
    report = _report("eight_gpus", monkeypatch)
    placed = place(ComputeInfo(num_accelerators=1), report, parse_gpus_option("4,0"))
    assert [g.index for g in placed.gpus] == [4, 0]
    assert place(ComputeInfo(num_accelerators=3), report, parse_gpus_option("none")).visible == ""
    with pytest.raises(PlacementError, match="GPU 9, which this machine does not have"):
        place(ComputeInfo(), report, [9])
    assert parse_gpus_option(None) is None
    for bad in ("a,b", "1,1", "-1"):
        with pytest.raises(ConfigError, match="--gpus"):
            parse_gpus_option(bad)
