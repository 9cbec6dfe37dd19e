"""Where a bundle's edge-runner wheel comes from: a checkout, a ``.whl``, or an installation.

:func:`inspect_source` says which one a path is and which extras it declares, before anything is
built (so a bad ``--extras`` fails at once); :func:`default_source` finds the running
edge-runner's own; :func:`repack_installed` packs a non-editable installation back into a wheel,
for a machine that has edge-runner but not its sources.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import re
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edge_runner.errors import ConfigError

__all__ = [
    "PROJECT",
    "Source",
    "SourceKind",
    "canonical",
    "default_source",
    "inspect_source",
    "repack_installed",
]

PROJECT = "edge-runner"


class SourceKind(Enum):
    """What a source path is."""

    CHECKOUT = "checkout"
    WHEEL = "wheel"
    INSTALLED = "installed"


@dataclass(frozen=True)
class Source:
    """A source of the edge-runner wheel and the extras it declares."""

    kind: SourceKind
    path: Path
    extras: frozenset[str]


def canonical(name: str) -> str:
    """A distribution name as pip compares them (``Jaraco.Classes`` → ``jaraco-classes``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def default_source() -> Path:
    """Where the running edge-runner came from: its checkout when installed editable, else the
    folder it is installed in (which :func:`repack_installed` packs back into a wheel).

    Raises:
        ConfigError: edge-runner is not installed, or its editable checkout is gone.
    """
    try:
        dist = importlib.metadata.distribution(PROJECT)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"{PROJECT} is not installed in {sys.executable}, so there is no default source; "
            "give --source PATH (a checkout or a .whl)"
        ) from exc
    checkout = _editable_checkout(dist)
    if checkout is not None:
        if not (checkout / "pyproject.toml").is_file():
            raise ConfigError(
                f"{PROJECT} is installed editable from {checkout}, which has no pyproject.toml "
                "any more; give --source PATH (a checkout or a .whl)"
            )
        return checkout
    return Path(str(dist.locate_file(""))).resolve()


def _editable_checkout(dist: importlib.metadata.Distribution) -> Path | None:
    """The checkout of an editable install (PEP 610's direct_url.json), else None."""
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    url = str(doc.get("url", ""))
    if doc.get("dir_info", {}).get("editable") and url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(url).path))
    return None


def inspect_source(path: Path) -> Source:
    """What ``path`` is and which extras it declares.

    Raises:
        ConfigError: it does not exist, cannot be read, or is not edge-runner.
    """
    if not path.exists():
        raise ConfigError(f"--source {path}: no such file or folder")
    if path.is_file():
        return _wheel_source(path)
    pyproject = path / "pyproject.toml"
    try:
        is_checkout = pyproject.is_file()
        if is_checkout:
            table = tomllib.loads(pyproject.read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--source {path}: cannot read pyproject.toml ({exc})") from exc
    if is_checkout:
        _check_name(path, str(table.get("name", "?")))
        return Source(SourceKind.CHECKOUT, path, frozenset(table.get("optional-dependencies", {})))
    try:
        dist = _installed(path)
    except (StopIteration, OSError) as exc:
        raise ConfigError(
            f"--source {path}: not a project checkout (no pyproject.toml), a .whl, or a "
            f"folder where {PROJECT} is installed"
        ) from exc
    extras = frozenset(dist.metadata.get_all("Provides-Extra") or [])
    return Source(SourceKind.INSTALLED, path, extras)


def _wheel_source(path: Path) -> Source:
    if path.suffix != ".whl":
        raise ConfigError(f"--source {path}: not a .whl file or a project checkout")
    try:
        with zipfile.ZipFile(path) as whl:
            name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = whl.read(name).decode()
    except (OSError, zipfile.BadZipFile, StopIteration) as exc:
        raise ConfigError(
            f"--source {path}: not a readable wheel ({exc or 'no METADATA'})"
        ) from exc
    project = re.search(r"^Name: *(\S+)", metadata, re.M)
    _check_name(path, project.group(1) if project else "?")
    extras = frozenset(re.findall(r"^Provides-Extra: *(\S+)", metadata, re.M))
    return Source(SourceKind.WHEEL, path, extras)


def _check_name(path: Path, name: str) -> None:
    if canonical(name) != PROJECT:
        raise ConfigError(f"--source {path} is the project {name!r}, not {PROJECT}")


def _installed(site: Path) -> importlib.metadata.Distribution:
    """edge-runner's distribution in the folder ``site`` (StopIteration when none)."""
    return next(
        d
        for d in importlib.metadata.distributions(path=[str(site)])
        if canonical(d.metadata["Name"] or "") == PROJECT
    )


def repack_installed(site: Path, out: Path) -> Path:
    """Pack the edge-runner installed (not editable) in ``site`` back into a wheel in ``out``."""
    dist = _installed(site)
    info = f"edge_runner-{dist.version}.dist-info"
    # pip writes these at install time; a wheel has its own RECORD and none of the others.
    skip_info = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    target = out / f"edge_runner-{dist.version}-py3-none-any.whl"
    records: list[str] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as whl:
        for entry in dist.files or []:
            rel = entry.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
                continue  # console scripts (pip makes them again) and byte code
            if rel.startswith(f"{info}/") and rel.split("/", 1)[1] in skip_info:
                continue
            data = Path(str(dist.locate_file(entry))).read_bytes()
            whl.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{rel},sha256={digest.decode()},{len(data)}")
        if not any(r.startswith(f"{info}/WHEEL,") for r in records):
            whl.writestr(
                f"{info}/WHEEL",
                "Wheel-Version: 1.0\nGenerator: edge-runner bundle\n"
                "Root-Is-Purelib: true\nTag: py3-none-any\n",
            )
            records.append(f"{info}/WHEEL,,")
        records.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return target
