"""Find a model's ``checkpoints`` (config.yaml) on this machine; never download them.

A runner may stand on an air-gapped box, so the weights a folder names (``checkpoints:
{type: huggingface, repo_id: org/name}``) are looked up locally, first hit wins:

1. ``$EDGE_RUNNER_CHECKPOINTS/<repo_id>/``, then ``$EDGE_RUNNER_CHECKPOINTS`` itself;
2. ``<folder>/1/checkpoints/`` (where Clarifai's runtime download puts them);
3. the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``),
   the snapshot ``refs/main`` names.

A place counts when it holds a file, and a file for each of ``allowed_file_patterns`` when the
section lists them. When none does, :class:`~edge_runner.errors.ModelFolderError` lists every
place looked at, what each lacked, and how to put the files there.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from edge_runner.errors import ModelFolderError
from edge_runner.models.config_keys import Checkpoints

__all__ = ["CHECKPOINTS_ENV", "find_checkpoints"]

#: The environment variable naming a folder of checkpoints (one subfolder per repo_id).
CHECKPOINTS_ENV = "EDGE_RUNNER_CHECKPOINTS"


def find_checkpoints(
    folder: Path, checkpoints: Checkpoints, raw: dict[str, Any] | None = None
) -> Path:
    """The local folder holding ``checkpoints``' files.

    Args:
        folder: the model folder.
        checkpoints: its parsed ``checkpoints`` section.
        raw: the section as written (for ``allowed_file_patterns``).

    Raises:
        ModelFolderError: no place here holds them; the message says where to put them.
    """
    patterns = [str(p) for p in (raw or {}).get("allowed_file_patterns") or ()]
    tried: list[str] = []
    for place in _places(folder, checkpoints.repo_id):
        lack = _lacks(place, patterns)
        if lack is None:
            return place
        tried.append(f"{place} ({lack})")
    target = folder / "1" / "checkpoints"
    wanted = f" with files matching {', '.join(patterns)}" if patterns else ""
    raise ModelFolderError(
        f"the checkpoints of {checkpoints.repo_id} (config.yaml `checkpoints`) are not on this "
        f"machine, and edge-runner does not download them. Looked in: {'; '.join(tried)}. "
        f"Put the repository's files{wanted} in {target} (on a machine with internet: "
        f"`huggingface-cli download {checkpoints.repo_id} --local-dir checkpoints`, then copy "
        f"that folder), or set {CHECKPOINTS_ENV}=DIR where DIR/{checkpoints.repo_id}/ holds them"
    )


def _places(folder: Path, repo_id: str) -> list[Path]:
    places = []
    given = os.environ.get(CHECKPOINTS_ENV)
    if given:
        places += [Path(given).expanduser() / repo_id, Path(given).expanduser()]
    places.append(folder / "1" / "checkpoints")
    places.append(_hf_snapshot(repo_id))
    return places


def _hf_snapshot(repo_id: str) -> Path:
    hub = os.environ.get("HF_HUB_CACHE")
    if not hub:
        home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
        hub = str(Path(home) / "hub")
    repo = Path(hub).expanduser() / f"models--{repo_id.replace('/', '--')}"
    try:
        revision = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        snapshots = sorted((repo / "snapshots").glob("*")) if repo.is_dir() else []
        return snapshots[-1] if snapshots else repo / "snapshots"
    return repo / "snapshots" / revision


def _lacks(place: Path, patterns: list[str]) -> str | None:
    if not place.is_dir():
        return "no such folder"
    names = [p.relative_to(place).as_posix() for p in place.rglob("*") if p.is_file()]
    if not names:
        return "empty"
    missing = [p for p in patterns if not fnmatch.filter(names, p)]
    if missing:
        return f"no file matching {', '.join(missing)}"
    return None
