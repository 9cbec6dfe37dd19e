"""``edge-runner bundle`` and ``install.sh``: build a bundle of this checkout (with the package
index, as any install needs), then install it with no network at all — a fresh venv inside a
network namespace with only loopback — and run ``edge-runner --version`` and the self-test."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

from edge_runner._version import __version__
from edge_runner.bundle import BundleOptions, build_bundle
from edge_runner.bundle.source import default_source
from edge_runner.errors import ConfigError
from edge_runner.protocol import PROTOCOL_VERSION, format_version
from tests.conftest import MS, ROOT
from tests.integration.netns import run_isolated, skip_reason
from tests.integration.test_cli import run_cli

# The first test also builds the session's bundle, which downloads ~25 MB on a cold cache.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
needs_netns = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

#: a bundle's own files, besides the wheels
OWN_FILES = {"requirements.txt", "install.sh", "install.ps1", "README.txt", "MANIFEST.json"}


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of this checkout, core only, built once for the session (a few seconds)."""
    dest = tmp_path_factory.mktemp("bundle") / "edge-runner-bundle"
    began = time.perf_counter()
    done = run_cli("bundle", str(dest), "--source", str(ROOT), timeout=300_000 * MS)
    assert done.returncode == 0, done.stderr
    print(f"bundle built in {time.perf_counter() - began:.1f} s")
    return dest


def _isolated_env() -> dict[str, str]:
    """This environment, with pip pointed at a package index and our local wheels as well:
    install.sh must ignore all of them."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_FIND_LINKS"] = str(ROOT)
    env["PIP_INDEX_URL"] = "https://pypi.org/simple"  # unreachable in the namespace anyway
    return env


def test_bundle_holds_pinned_hashed_wheels(bundle: Path) -> None:
    """Every wheel is pinned with its sha256 in requirements.txt and listed in MANIFEST.json."""
    names = {p.name for p in bundle.iterdir()}
    assert OWN_FILES | {"SHA256SUMS"} <= names
    wheels = sorted(n for n in names if n.endswith(".whl"))
    assert names == OWN_FILES | {"SHA256SUMS"} | set(wheels)
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert manifest["project"] == "edge-runner" and manifest["version"] == __version__
    assert manifest["protocol_version"] == format_version(PROTOCOL_VERSION)
    assert manifest["target"]["python"] == "{}.{}".format(*sys.version_info[:2])
    assert manifest["extras"] == []
    assert sorted(f["name"] for f in manifest["files"]) == wheels
    requirements = (bundle / "requirements.txt").read_text()
    assert f"edge-runner=={__version__} \\" in requirements
    for entry in manifest["files"]:
        assert f"--hash=sha256:{entry['sha256']}" in requirements
    for dependency in ("grpcio", "fastapi", "cryptography", "keyring"):
        assert re.search(rf"^{dependency}==\S+ \\$", requirements, re.M), dependency
    assert os.access(bundle / "install.sh", os.X_OK)
    checked = subprocess.run(
        ["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=bundle, capture_output=True
    )
    assert checked.returncode == 0, checked.stdout
    (project,) = [w for w in wheels if w.startswith("edge_runner-")]
    with zipfile.ZipFile(bundle / project) as whl:
        shipped = set(whl.namelist())
    assert {"edge_runner/selftest/model/config.yaml", "edge_runner/selftest/model/1/model.py"} <= (
        shipped
    )


def test_the_wheel_ships_tui_as_edge_runner_tui(bundle: Path) -> None:
    """The dashboard's tui/ folder is in the wheel as edge_runner_tui, stylesheet and subpackages
    included, and no bare top-level `tui` package collides with another project's."""
    (project,) = bundle.glob("edge_runner-*.whl")
    with zipfile.ZipFile(project) as whl:
        shipped = set(whl.namelist())
        top_level = whl.read(next(n for n in shipped if n.endswith(".dist-info/top_level.txt")))
    assert {"edge_runner_tui/app.py", "edge_runner_tui/dashboard.tcss"} <= shipped
    assert {"edge_runner_tui/screens/gpu.py", "edge_runner_tui/widgets/table.py"} <= shipped
    assert [name for name in shipped if name.startswith("tui/")] == []
    assert top_level.decode().split() == ["edge_runner", "edge_runner_tui"]


@needs_netns
def test_install_sh_installs_and_self_tests_with_no_network(bundle: Path, tmp_path: Path) -> None:
    """In a namespace with only loopback, install.sh makes a venv from the bundle alone, and the
    installed edge-runner prints its version, passes the self-test, and can bundle itself
    again (its installed files packed back into the same wheel)."""
    target, again = tmp_path / "venv", tmp_path / "again"
    began = time.perf_counter()
    done = run_isolated(
        f"sh {bundle}/install.sh {target} && {target}/bin/python -c "
        "'import edge_runner; print(\"from\", edge_runner.__file__)' && "
        f"{target}/bin/edge-runner bundle {again} --find-links {bundle}",
        env=_isolated_env(),
        cwd=tmp_path,
        timeout=180_000 * MS,
    )
    print(f"installed, self-tested and bundled again in {time.perf_counter() - began:.1f} s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    version = f"edge-runner {__version__} (protocol {format_version(PROTOCOL_VERSION)})"
    assert version in output.splitlines()
    assert re.search(r"^self-test OK \(.*plain: .*TLS: ", output, re.M), output
    assert f"from {target}/lib/" in output  # the installed copy, not this checkout
    assert "building the edge-runner wheel from " in output and "(installed)" in output
    (built,) = bundle.glob("edge_runner-*.whl")
    (packed,) = again.glob("edge_runner-*.whl")
    with zipfile.ZipFile(built) as one, zipfile.ZipFile(packed) as other:
        assert sorted(one.namelist()) == sorted(other.namelist())
        for name in one.namelist():
            if not name.endswith("/RECORD"):  # the only file the two write differently
                assert one.read(name) == other.read(name), name
    assert {p.name for p in again.iterdir()} == {p.name for p in bundle.iterdir()}


@needs_netns
def test_bundle_from_find_links_needs_no_index(bundle: Path, tmp_path: Path) -> None:
    """--find-links builds a bundle from local wheels with no network; --force replaces an
    earlier bundle's files in DIR and leaves the user's own files alone."""
    dest = tmp_path / "again"
    shutil.copytree(bundle, dest)
    (dest / "notes.txt").write_text("mine")
    stale = dest / "stale-0.1-py3-none-any.whl"
    stale.write_bytes(b"")
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    manifest["files"].append({"name": stale.name, "size": 0, "sha256": ""})
    (dest / "MANIFEST.json").write_text(json.dumps(manifest))
    # From the bundle's own edge-runner wheel: building one from the checkout offline would
    # also need setuptools among the wheels (or in this venv).
    (wheel,) = bundle.glob("edge_runner-*.whl")
    done = run_isolated(
        f"exec {sys.executable} -m edge_runner bundle {dest} --source {wheel} "
        f"--find-links {bundle} --force",
        env=_isolated_env(),
        cwd=ROOT,
        timeout=120_000 * MS,
    )
    assert done.returncode == 0, done.stderr
    assert (dest / "notes.txt").read_text() == "mine"
    assert not stale.exists()
    assert {p.name for p in dest.iterdir()} == {p.name for p in bundle.iterdir()} | {"notes.txt"}


def test_find_links_without_the_wheels_says_what_is_needed(bundle: Path, tmp_path: Path) -> None:
    """A dependency pip cannot get is one line naming it and what a bundle needs; DIR is not
    created and nothing is left next to it."""
    empty = tmp_path / "wheels"
    empty.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (wheel,) = bundle.glob("edge_runner-*.whl")
    done = run_cli("bundle", str(out / "b"), "--source", str(wheel), "--find-links", str(empty))
    assert done.returncode == 2
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("edge-runner:")]
    assert "collecting the dependencies failed: pip: Could not find a version" in error
    assert "building a bundle needs the package index or --find-links WHEELS" in error
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--extras", "tui,bogus"], "unknown extra 'bogus'; edge-runner has: dev, fastmcp, gpu"),
        (["--source", "{tmp}/nowhere"], "nowhere: no such file or folder"),
        (["--source", "{tmp}/empty"], "not a project checkout (no pyproject.toml), a .whl"),
        (["--source", "{tmp}/other"], "is the project 'other', not edge-runner"),
        (["--source", "{tmp}/file.txt"], "not a .whl file or a project checkout"),
        (["--source", "{tmp}/broken.whl"], "not a readable wheel"),
        (["--python", "3"], "--python must look like 3.11, got '3'"),
        (["--platform", "Linux x86"], "is not a pip platform tag"),
        (["--find-links", "{tmp}/nowhere"], "--find-links {tmp}/nowhere: no such folder"),
    ],
    ids=[
        "extra", "missing", "not-a-project", "other-project", "not-a-wheel", "broken-wheel",
        "python", "platform", "find-links",
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    """Each bad option fails at once (before pip runs) with one line; DIR is never made."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "pyproject.toml").write_text('[project]\nname = "other"\n')
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "broken.whl").write_text("not a zip")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    dest = tmp_path / "dest"
    done = run_cli("bundle", str(dest), *args, timeout=20_000 * MS)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("edge-runner: error: ")
    assert message.replace("{tmp}", str(tmp_path)) in done.stderr
    assert not dest.exists()


def test_non_empty_dir_is_refused_without_force(tmp_path: Path) -> None:
    """A non-empty DIR is refused, naming what is there and --force; its files stay."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    done = run_cli("bundle", str(dest))
    assert done.returncode == 2
    assert f"{dest} is not empty (keep.txt)" in done.stderr and "--force" in done.stderr
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_no_pip_is_a_clear_error(tmp_path: Path) -> None:
    """An interpreter without pip: the error names it and how to get pip."""
    venv.create(tmp_path / "nopip", with_pip=False)
    python = tmp_path / "nopip" / "bin" / "python"
    options = BundleOptions(dest=tmp_path / "dest", source=ROOT, python=python)
    with pytest.raises(ConfigError, match=r"pip is not available for .*nopip.*ensurepip"):
        build_bundle(options)
    assert not (tmp_path / "dest").exists()


def test_default_source_is_the_editable_checkout() -> None:
    """Installed editable (as here), the default source is the checkout itself."""
    assert default_source() == ROOT


def test_selftest_passes_here() -> None:
    """`python -m edge_runner.selftest` passes in this environment, in plain text and TLS."""
    done = subprocess.run(
        [sys.executable, "-m", "edge_runner.selftest"],
        capture_output=True,
        text=True,
        timeout=60_000 * MS,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("self-test OK (") and "TLS:" in done.stdout


@needs_netns
def test_selftest_failure_names_the_step() -> None:
    """With loopback down the runner cannot reach the control plane: the self-test says which
    step failed and the tunnel's error, and exits 1."""
    limit = f"{2000 * MS:g}"
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "edge_runner.selftest", "--timeout", limit],
        capture_output=True,
        text=True,
        timeout=60_000 * MS,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(
        f"self-test FAILED at register the runner through the tunnel: no answer within {limit} s;"
        " the tunnel said: cannot connect"
    ), done.stderr
