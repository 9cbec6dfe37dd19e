"""The files of a bundle besides its wheels: pinned requirements with hashes, the install
scripts, the README, the manifest and SHA256SUMS (see :mod:`edge_runner.bundle.build`).

The scripts are text for another machine, filled in with the bundle's Python version and
edge-runner version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runner.bundle.source import PROJECT, canonical
from edge_runner.errors import ConfigError

__all__ = [
    "BUNDLE_FILES",
    "WheelFile",
    "hash_wheels",
    "install_ps1",
    "install_sh",
    "readme",
    "requirements",
    "sha256",
    "write_files",
]

#: the files a bundle holds besides its wheels
BUNDLE_FILES = (
    "requirements.txt",
    "install.sh",
    "install.ps1",
    "README.txt",
    "MANIFEST.json",
    "SHA256SUMS",
)


@dataclass(frozen=True)
class WheelFile:
    """One wheel in a bundle."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int

    @property
    def tag(self) -> str:
        """Its ``python-abi-platform`` tag."""
        return "-".join(self.filename.removesuffix(".whl").split("-")[-3:])


def sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_wheels(folder: Path) -> tuple[WheelFile, ...]:
    """Every wheel in ``folder``, hashed.

    Raises:
        ConfigError: something there is not a wheel (the box would have to build it).
    """
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".whl":
            raise ConfigError(
                f"pip left {path.name}, which is not a wheel; the box could not install it "
                "without building it (use a --platform/--python that has wheels, or build the "
                "bundle on a machine like the box)"
            )
        name, version = path.name.split("-")[:2]
        found.append(
            WheelFile(canonical(name), version, path.name, sha256(path), path.stat().st_size)
        )
    return tuple(found)


def requirements(wheels: Sequence[WheelFile], extras: Sequence[str]) -> str:
    """``requirements.txt``: each wheel pinned with its hashes, for ``--require-hashes``.

    Raises:
        ConfigError: two versions of one project (pip never resolves to that).
    """
    by_name: dict[str, list[WheelFile]] = {}
    for wheel in wheels:
        by_name.setdefault(wheel.name, []).append(wheel)
    lines = [
        "# Every wheel of this bundle, pinned, with its sha256:",
        "#   pip install --no-index --find-links . --require-hashes -r requirements.txt",
    ]
    for name, group in sorted(by_name.items()):
        versions = sorted({w.version for w in group})
        if len(versions) > 1:
            raise ConfigError(f"pip collected two versions of {name}: {', '.join(versions)}")
        label = f"{name}[{','.join(extras)}]" if name == PROJECT and extras else name
        hashes = " \\\n".join(f"    --hash=sha256:{w.sha256}" for w in group)
        lines.append(f"{label}=={versions[0]} \\\n{hashes}")
    return "\n".join(lines) + "\n"


def write_files(
    folder: Path, wheels: Sequence[WheelFile], manifest: dict[str, Any], extras: Sequence[str]
) -> None:
    """Write every file of :data:`BUNDLE_FILES` into ``folder``, next to the wheels."""
    python = str(manifest["target"]["python"])
    version = str(manifest["version"])
    spec = PROJECT + (f"[{','.join(extras)}]" if extras else "")
    (folder / "requirements.txt").write_text(requirements(wheels, extras))
    install = folder / "install.sh"
    install.write_text(install_sh(python, version))
    install.chmod(0o755)
    (folder / "install.ps1").write_text(install_ps1(python, version))
    (folder / "README.txt").write_text(readme(manifest, spec))
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # `sha256sum -c SHA256SUMS` on the box checks the copy that was carried over.
    sums = [f"{w.sha256}  {w.filename}" for w in wheels]
    sums += [f"{sha256(folder / name)}  {name}" for name in BUNDLE_FILES if name != "SHA256SUMS"]
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")


_INSTALL_SH = r"""#!/bin/sh
# Install edge-runner @VERSION@ from this offline bundle, with no network:
#
#   sh install.sh VENV_DIR          # PYTHON=/path/to/python@PYTHON@ picks the interpreter
#
# It makes a venv at VENV_DIR, installs the wheels of this folder and nothing else (pinned,
# sha256 checked), then runs `edge-runner --version` and the self-test, which starts a control
# plane and a runner on 127.0.0.1 and calls a built-in model through the tunnel.
set -eu

want="@PYTHON@"
here=$(cd "$(dirname "$0")" && pwd)
if [ "$#" -ne 1 ]; then
    echo "usage: sh $0 VENV_DIR   (PYTHON=python$want picks the interpreter)" >&2
    exit 2
fi
venv=$1
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
elif command -v "python$want" >/dev/null 2>&1; then
    python=python$want
else
    python=python3
fi
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || {
    echo "install.sh: cannot run $python; set PYTHON to a Python $want interpreter" >&2
    exit 2
}
if [ "$have" != "$want" ]; then
    echo "install.sh: this bundle holds wheels for Python $want, but $python is Python $have;" \
        "run: PYTHON=/path/to/python$want sh $0 $venv" >&2
    exit 2
fi

# This folder only: no index, and no index or find-links from pip's config or environment.
unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CONSTRAINT
PIP_CONFIG_FILE=/dev/null
PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CONFIG_FILE PIP_DISABLE_PIP_VERSION_CHECK

"$python" -m venv "$venv" || {
    echo "install.sh: could not make a venv at $venv (Debian/Ubuntu: install python3-venv)" >&2
    exit 1
}
"$venv/bin/python" -m pip install --no-index --find-links "$here" \
    --require-hashes -r "$here/requirements.txt"
"$venv/bin/edge-runner" --version
"$venv/bin/python" -m edge_runner.selftest
echo "edge-runner is installed: $venv/bin/edge-runner (put $venv/bin on PATH)"
"""

_INSTALL_PS1 = r"""# Install edge-runner @VERSION@ from this offline bundle on Windows, no network:
#
#   powershell -ExecutionPolicy Bypass -File install.ps1 VENV_DIR
#
# $env:PYTHON picks the interpreter (default: the py launcher's Python @PYTHON@). It makes a
# venv, installs the wheels of this folder and nothing else (pinned, sha256 checked), then runs
# `edge-runner --version` and the self-test (127.0.0.1 only).
param([Parameter(Mandatory = $true)][string]$Venv)
$ErrorActionPreference = "Stop"
$want = "@PYTHON@"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "install.ps1: '$Exe $($Arguments -join ' ')' failed (exit $LASTEXITCODE)"
    }
}

if ($env:PYTHON) { $exe = $env:PYTHON; $pre = @() } else { $exe = "py"; $pre = @("-$want") }
$have = & $exe @pre -c "import sys; print('%d.%d' % sys.version_info[:2])"
if ($have -ne $want) {
    throw ("install.ps1: this bundle holds wheels for Python $want, but $exe is " +
        "Python $have; set `$env:PYTHON to a Python $want")
}

# This folder only: no index, and no index or find-links from pip's config or environment.
foreach ($name in "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT") {
    Remove-Item "Env:$name" -ErrorAction SilentlyContinue
}
$env:PIP_CONFIG_FILE = "nul"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"

Invoke-Checked $exe ($pre + @("-m", "venv", $Venv))
$py = Join-Path $Venv "Scripts\python.exe"
Invoke-Checked $py @("-m", "pip", "install", "--no-index", "--find-links", $here,
    "--require-hashes", "-r", (Join-Path $here "requirements.txt"))
Invoke-Checked (Join-Path $Venv "Scripts\edge-runner.exe") @("--version")
Invoke-Checked $py @("-m", "edge_runner.selftest")
Write-Output "edge-runner is installed: $Venv\Scripts\edge-runner.exe"
"""

_README = """@TITLE@
@RULE@

Wheels of edge-runner and every dependency for Python @PYTHON@ on @PLATFORMS@
(extras: @EXTRAS@), made by `edge-runner bundle`. Nothing here needs a network.

Install on the box (Linux, macOS):

    sh install.sh /opt/edge-runner              # a venv there; then --version and the self-test
    /opt/edge-runner/bin/edge-runner --version

Windows (PowerShell):

    powershell -ExecutionPolicy Bypass -File install.ps1 C:\\edge-runner

Or by hand, into any environment:

    python@PYTHON@ -m pip install --no-index --find-links . --require-hashes -r requirements.txt
    python@PYTHON@ -m pip install --no-index --find-links . '@SPEC@'   # the same, no hash check
    python@PYTHON@ -m edge_runner.selftest

Check the copy you carried over first: `sha256sum -c SHA256SUMS` (Windows: compare
Get-FileHash with MANIFEST.json, which lists every wheel with its size and sha256). The
air-gapped setup, step by step: docs/air-gapped.md in the edge-runner sources.
"""


def _fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def install_sh(python: str, version: str) -> str:
    """``install.sh`` for a bundle of edge-runner ``version`` built for Python ``python``."""
    return _fill(_INSTALL_SH, PYTHON=python, VERSION=version)


def install_ps1(python: str, version: str) -> str:
    """``install.ps1``, the Windows twin of :func:`install_sh`."""
    return _fill(_INSTALL_PS1, PYTHON=python, VERSION=version)


def readme(manifest: dict[str, Any], spec: str) -> str:
    """``README.txt``: what the bundle is and how to install it."""
    target = manifest["target"]
    title = f"edge-runner {manifest['version']}: an offline bundle"
    return _fill(
        _README,
        TITLE=title,
        RULE="=" * len(title),
        VERSION=str(manifest["version"]),
        PYTHON=str(target["python"]),
        PLATFORMS=", ".join(target["platforms"]),
        EXTRAS=", ".join(manifest["extras"]) or "none",
        SPEC=spec,
    )
