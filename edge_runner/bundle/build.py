"""Offline bundles: a wheelhouse of edge-runner and its dependencies, to install with no network.

``edge-runner bundle DIR`` (or ``packaging/offline-bundle.sh``) writes, into DIR:

- a wheel of edge-runner (``pip wheel --no-deps`` of the source) and a wheel of every
  dependency (``pip wheel``; ``pip download --only-binary=:all:`` for another ``--platform`` or
  ``--python``, since pip can only fetch ready wheels for a machine it is not running on);
- ``requirements.txt``: every wheel pinned exactly, with its sha256, so the install on the box
  runs with ``--require-hashes``;
- ``install.sh`` (POSIX sh) and ``install.ps1`` (Windows): make a venv, ``pip install
  --no-index --find-links`` the bundle, then run ``edge-runner --version`` and the self-test
  (``python -m edge_runner.selftest``);
- ``MANIFEST.json``: project and protocol version, Python and platform, extras, and every file
  with its size and sha256; ``SHA256SUMS`` for ``sha256sum -c``; ``README.txt``: the steps
  in words.

Building needs the package index (any install does), or ``--find-links WHEELS`` to build from
a folder of wheels with no index at all. The bundle is put together in a folder next to DIR and
moved into place at the end, so a failure leaves DIR as it was.

This module imports only the standard library (and our error tree), and runs pip as a
subprocess of the chosen interpreter.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runner.bundle.files import BUNDLE_FILES, WheelFile, hash_wheels, write_files
from edge_runner.bundle.source import (
    PROJECT,
    Source,
    SourceKind,
    default_source,
    inspect_source,
    repack_installed,
)
from edge_runner.errors import ConfigError

__all__ = [
    "BUNDLE_FILES",
    "Bundle",
    "BundleOptions",
    "WheelFile",
    "build_bundle",
    "default_source",
    "parse_extras",
]
_NEEDS_INDEX = "building a bundle needs the package index or --find-links WHEELS"
_SKIP_IN_COPY = (
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
)


@dataclass(frozen=True)
class BundleOptions:
    """What to bundle.

    Attributes:
        dest: the bundle folder (created; must be empty unless ``force``).
        extras: optional extras of edge-runner to include (``tui``, ``gpu``, ``mcp``, ...).
        platforms: pip platform tags of the target (``manylinux2014_x86_64``); empty: this one.
        python_version: the target's Python as ``3.11``; None: the running interpreter's.
        source: a checkout (folder with pyproject.toml) or a ``.whl``; None: see
            :func:`default_source`.
        find_links: folders of wheels to build from instead of the package index.
        force: write into a non-empty ``dest`` (files of an earlier bundle there are replaced;
            nothing else is touched).
        python: the interpreter whose pip does the work.
    """

    dest: Path
    extras: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    python_version: str | None = None
    source: Path | None = None
    find_links: tuple[Path, ...] = ()
    force: bool = False
    python: Path = field(default_factory=lambda: Path(sys.executable))

    @property
    def cross(self) -> bool:
        """Whether the target is another platform or Python than the running one."""
        return bool(self.platforms) or self.python_version is not None


@dataclass(frozen=True)
class Bundle:
    """A finished bundle."""

    path: Path
    version: str
    wheels: tuple[WheelFile, ...]
    manifest: dict[str, Any]

    @property
    def size(self) -> int:
        """Bytes of wheels."""
        return sum(w.size for w in self.wheels)


def parse_extras(raw: str | None) -> tuple[str, ...]:
    """``"tui, gpu"`` → ``("gpu", "tui")``; duplicates and blanks dropped."""
    if not raw:
        return ()
    return tuple(sorted({part.strip().lower() for part in raw.split(",") if part.strip()}))


# -- checks before any work ---------------------------------------------------------------------


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} exists and is not a folder; give a folder for the bundle")
    if dest.is_dir():
        try:
            entries = sorted(p.name for p in dest.iterdir())
        except OSError as exc:
            raise ConfigError(f"cannot read {dest}: {exc.strerror}") from exc
        if entries and not force:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ConfigError(
                f"{dest} is not empty ({shown}); give an empty or new folder, or --force to "
                "replace an earlier bundle there (other files are left alone)"
            )


def _check_target(options: BundleOptions) -> None:
    version = options.python_version
    if version is not None and not re.fullmatch(r"3\.\d{1,2}", version):
        raise ConfigError(f"--python must look like 3.11, got {version!r}")
    for platform in options.platforms:
        if not re.fullmatch(r"[a-z0-9_.]+", platform):
            raise ConfigError(
                f"--platform {platform!r} is not a pip platform tag; use one like "
                "manylinux2014_x86_64, manylinux_2_28_aarch64, win_amd64 or macosx_11_0_arm64"
            )
    for folder in options.find_links:
        if not folder.is_dir():
            raise ConfigError(f"--find-links {folder}: no such folder")


def _check_pip(python: Path) -> str:
    """pip's version line, or a clear error when ``python -m pip`` does not work."""
    try:
        done = subprocess.run(
            [str(python), "-m", "pip", "--version", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as exc:
        raise ConfigError(f"cannot run {python}: {exc.strerror}") from exc
    if done.returncode != 0:
        raise ConfigError(
            f"pip is not available for {python} ({_last_line(done.stderr) or 'no output'}); "
            f"install it with `{python} -m ensurepip --upgrade` or your system's python3-pip"
        )
    return done.stdout.strip()


def _check_extras(extras: Sequence[str], known: frozenset[str]) -> None:
    unknown = [e for e in extras if e not in known]
    if unknown:
        raise ConfigError(
            f"unknown extra{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"{PROJECT} has: {', '.join(sorted(known)) or 'none'}"
        )


# -- building -----------------------------------------------------------------------------------


def build_bundle(options: BundleOptions, *, say: Callable[[str], None] = lambda _: None) -> Bundle:
    """Build the bundle described by ``options``.

    Args:
        options: what to bundle and where.
        say: receives one line per step (the CLI prints them on stderr).

    Raises:
        ConfigError: bad options, no pip, or pip could not get a wheel (the message says which
            and what to do); ``options.dest`` is left as it was.
    """
    dest = options.dest.expanduser().absolute()
    _check_dest(dest, options.force)
    _check_target(options)
    source = inspect_source((options.source or default_source()).expanduser().absolute())
    _check_extras(options.extras, source.extras)
    _check_pip(options.python)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Next to DEST, so the finished bundle moves into place without a copy.
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write in {dest.parent}: {exc.strerror}") from exc
    try:
        wheels_dir = staging / "bundle"
        wheels_dir.mkdir()
        say(f"building the {PROJECT} wheel from {source.path} ({source.kind.value})")
        project_wheel = _project_wheel(source, staging, options, skip=(staging, dest))
        say(
            "collecting the dependencies"
            + (f" from {', '.join(map(str, options.find_links))}" if options.find_links else "")
        )
        _dependencies(project_wheel, wheels_dir, options)
        wheels = hash_wheels(wheels_dir)
        version = next(w.version for w in wheels if w.name == PROJECT)
        manifest = _manifest(options, wheels, version, project_wheel)
        write_files(wheels_dir, wheels, manifest, options.extras)
        try:
            _move_into_place(wheels_dir, dest)
        except OSError as exc:
            raise ConfigError(f"cannot write the bundle to {dest}: {exc.strerror}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bundle(dest, version, wheels, manifest)


def _pip(options: BundleOptions, *args: str, what: str) -> None:
    """Run ``python -m pip ARGS`` quietly; a failure raises naming pip's own error line."""
    argv = [
        str(options.python),
        "-m",
        "pip",
        *args,
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-q",
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"{what} failed: {_pip_error(done.stderr + done.stdout)}")


def _project_wheel(
    source: Source, staging: Path, options: BundleOptions, *, skip: tuple[Path, ...]
) -> Path:
    """The edge-runner wheel, built, copied or packed from ``source`` (``skip``: folders not to
    copy from a checkout, as when DIR lies inside it)."""
    out = staging / "project"
    out.mkdir()
    if source.kind is SourceKind.WHEEL:
        return Path(shutil.copy2(source.path, out))
    if source.kind is SourceKind.INSTALLED:
        return repack_installed(source.path, out)
    # A copy, so the build's own build/ and *.egg-info never land in the user's checkout.
    tree = staging / "src"
    try:
        shutil.copytree(source.path, tree, ignore=_copy_filter(skip))
    except (OSError, shutil.Error) as exc:
        raise ConfigError(f"--source {source.path}: cannot copy the checkout ({exc})") from exc
    # With a setuptools here that can build the project, pip need not download one.
    isolation = ["--no-build-isolation"] if _has_build_backend(options.python) else []
    _pip(
        options,
        "wheel",
        "--no-deps",
        *isolation,
        *_link_args(options),
        "--wheel-dir",
        str(out),
        str(tree),
        what=f"building the {PROJECT} wheel from {source.path}",
    )
    built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        raise ConfigError(f"building the {PROJECT} wheel from {source.path} made no wheel")
    return built[0]


def _copy_filter(skip: tuple[Path, ...]) -> Callable[[str, list[str]], set[str]]:
    """shutil.copytree's ``ignore``: build junk, and the bundle's own folders."""
    patterns = shutil.ignore_patterns(*_SKIP_IN_COPY)
    skipped = {str(path) for path in skip}

    def ignore(folder: str, names: list[str]) -> set[str]:
        ignored = set(patterns(folder, names))
        return ignored | {n for n in names if os.path.join(folder, n) in skipped}

    return ignore


def _has_build_backend(python: Path) -> bool:
    """Whether ``python`` has setuptools >= 70.1 (bdist_wheel built in: no `wheel` needed)."""
    check = (
        "import sys, setuptools; v = tuple(int(p) for p in setuptools.__version__.split('.')[:2]);"
        " sys.exit(0 if v >= (70, 1) else 1)"
    )
    try:
        done = subprocess.run([str(python), "-c", check], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _link_args(options: BundleOptions) -> list[str]:
    """``--find-links`` means: these wheels, and not the package index."""
    if not options.find_links:
        return []
    args = ["--no-index"]
    for folder in options.find_links:
        args += ["--find-links", str(folder.expanduser().absolute())]
    return args


def _dependencies(project_wheel: Path, wheels_dir: Path, options: BundleOptions) -> None:
    requirement = str(project_wheel)
    if options.extras:
        requirement += f"[{','.join(options.extras)}]"
    links = _link_args(options)
    what = "collecting the dependencies"
    if not options.cross:
        # Wheels for this machine; a dependency published only as an sdist is built here, so
        # the box needs no compiler.
        _pip(options, "wheel", *links, "--wheel-dir", str(wheels_dir), requirement, what=what)
        return
    target: list[str] = ["--only-binary=:all:"]
    for platform in options.platforms:
        target += ["--platform", platform]
    if options.python_version:
        target += ["--python-version", options.python_version]
    _pip(options, "download", *links, *target, "--dest", str(wheels_dir), requirement, what=what)


def _protocol_version(project_wheel: Path) -> str:
    """The tunnel protocol version the bundled edge-runner speaks (read from its code)."""
    try:
        with zipfile.ZipFile(project_wheel) as whl:
            code = whl.read("edge_runner/protocol/version.py").decode()
    except (OSError, KeyError, zipfile.BadZipFile):
        code = ""
    match = re.search(r"PROTOCOL_VERSION[^=]*=\s*\((\d+),\s*(\d+)\)", code)
    return f"{match.group(1)}.{match.group(2)}" if match else "unknown"


def _manifest(
    options: BundleOptions, wheels: Sequence[WheelFile], version: str, project_wheel: Path
) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "version": version,
        "protocol_version": _protocol_version(project_wheel),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "target": {
            "python": options.python_version or "{}.{}".format(*sys.version_info[:2]),
            "platforms": list(options.platforms) or [sysconfig.get_platform()],
            "built_for_this_machine": not options.cross,
            "wheel_tags": sorted({w.tag for w in wheels}),
        },
        "extras": list(options.extras),
        "install": "sh install.sh VENV_DIR   (Windows: install.ps1 VENV_DIR)",
        "files": [{"name": w.filename, "size": w.size, "sha256": w.sha256} for w in wheels],
    }


def _move_into_place(built: Path, dest: Path) -> None:
    """Move the finished bundle to ``dest``; an earlier bundle's files there are replaced."""
    if not dest.exists():
        os.replace(built, dest)
        return
    old = dest / "MANIFEST.json"
    stale: list[str] = list(BUNDLE_FILES)
    if old.is_file():
        # Not a manifest of ours: replace only our fixed file names.
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            stale += [str(f["name"]) for f in json.loads(old.read_text()).get("files", [])]
    for name in stale:
        if "/" not in name and name not in ("", ".", ".."):
            (dest / name).unlink(missing_ok=True)
    for path in built.iterdir():
        os.replace(path, dest / path.name)


# -- pip's messages -----------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _pip_error(output: str) -> str:
    """pip's first ERROR line, and what to do about it."""
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")]
    detail = errors[0].removeprefix("ERROR:").strip() if errors else _last_line(output)
    lowered = output.lower()
    network = any(
        word in lowered
        for word in (
            "no matching distribution",
            "could not find a version",
            "network",
            "connection",
            "name resolution",
            "temporary failure",
        )
    )
    hint = f"; {_NEEDS_INDEX}" if network else ""
    return f"pip: {detail or 'no output'}{hint}"
