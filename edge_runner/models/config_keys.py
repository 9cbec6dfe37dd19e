"""The ``config.yaml`` sections besides ``model``: checked, kept, or warned about once.

Clarifai's config.yaml carries settings for its cloud next to the ones that matter on a runner.
Each top-level and ``model.*`` key is one of: used here (``num_threads``, ``concepts``,
``checkpoints``, ``inference_compute_info``, ``toolkit``), accepted for the record
(``model.user_id``/``app_id``, ``build_info.python_version``, which is compared with the
running Python), or ignored with one warning per file and key saying what to use
instead. A typo is an unknown key and gets the same warning: a folder is never refused for it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runner.errors import ModelFolderError

__all__ = [
    "CHECKPOINT_WHEN",
    "Checkpoints",
    "ConceptInfo",
    "parse_checkpoints",
    "parse_concepts",
    "parse_num_threads",
    "warn_ignored_keys",
]

logger = logging.getLogger(__name__)

#: When Clarifai downloads checkpoints; a runner only ever loads them at run time.
CHECKPOINT_WHEN = ("runtime", "build", "upload")

#: Top-level keys used or accepted here (each has its own parser or reader).
_USED = {
    "model",
    "inference_compute_info",
    "num_threads",
    "concepts",
    "checkpoints",
    "toolkit",
    "build_info",
}

#: Keys accepted but ignored here, with what to use instead.
_IGNORED = {
    "compute": "Clarifai's cloud instance choice; edge-runner runs where you start it: use "
    "inference_compute_info.num_accelerators and --gpus",
}
_MODEL_USED = {"id", "user_id", "app_id", "model_type_id"}
_MODEL_IGNORED = {
    "model_version": "each start serves the folder as it is; restart the runner to change it",
    "description": "the docstring of each method is its description",
}
_CHECKPOINT_USED = {"type", "repo_id", "when", "allowed_file_patterns"}
_CHECKPOINT_IGNORED = {
    "hf_token": "checkpoints are never downloaded here; put the files in place and pass "
    "--checkpoints DIR",
    "ignore_file_patterns": "every file found locally is left for the model to read",
}
_warned: set[tuple[Path, str]] = set()


@dataclass(frozen=True)
class ConceptInfo:
    """A concept (label) a classifier or detector may output, from ``concepts:``.

    Attributes:
        id: the concept's id (Clarifai writes ``'0'``, ``'1'``, ...).
        name: its readable name.
    """

    id: str
    name: str


@dataclass(frozen=True)
class Checkpoints:
    """The ``checkpoints:`` section: weights the model loads, found locally here.

    Attributes:
        type: where they come from (``huggingface``).
        repo_id: the repository, ``org/name``.
        when: Clarifai's download time; here they are always looked up when the model loads.
    """

    type: str
    repo_id: str
    when: str = "runtime"


def warn_ignored_keys(path: Path, data: dict[str, Any]) -> None:
    """Warn once per file and key about keys edge-runner ignores or does not know."""
    for key in data:
        if key in _USED:
            continue
        instead = _IGNORED.get(key, f"known keys: {', '.join(sorted(_USED | set(_IGNORED)))}")
        verb = "is ignored here" if key in _IGNORED else "is not a key edge-runner knows; ignored"
        _warn_once(path, key, f"{path}: `{key}` {verb} ({instead})")
    build = data.get("build_info")
    for key in build if isinstance(build, dict) else ():
        if key != "python_version":
            _warn_once(
                path,
                f"build_info.{key}",
                f"{path}: `build_info.{key}` is ignored here (it builds Clarifai's image; the "
                "runner runs in the environment you start it from)",
            )
    wanted = build.get("python_version") if isinstance(build, dict) else None
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted is not None and str(wanted) != running:
        _warn_once(
            path,
            "build_info.python_version",
            f"{path}: build_info.python_version is {wanted} but the runner runs Python "
            f"{running}; start it from a Python {wanted} environment if the model needs it",
        )
    model = data.get("model")
    for key in model if isinstance(model, dict) else ():
        if key in _MODEL_USED:
            continue
        instead = _MODEL_IGNORED.get(key, f"known keys: {', '.join(sorted(_MODEL_USED))}")
        verb = "is ignored here" if key in _MODEL_IGNORED else "is not a key edge-runner knows"
        _warn_once(path, f"model.{key}", f"{path}: `model.{key}` {verb} ({instead})")


def _warn_once(path: Path, key: str, message: str) -> None:
    if (path, key) in _warned:
        return
    _warned.add((path, key))
    logger.warning("%s", message)


def parse_num_threads(path: Path, raw: Any) -> int | None:
    """``num_threads``: tasks run at once (the runner's ``--pool-size`` wins over it)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ModelFolderError(
            f"{path}: num_threads must be a whole number >= 1 (tasks run at once), got {raw!r}"
        )
    return raw


def parse_concepts(path: Path, raw: Any) -> tuple[ConceptInfo, ...]:
    """``concepts``: a list of ``{id, name}`` (a bare name is both)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ModelFolderError(
            f"{path}: concepts must be a list, e.g.\nconcepts:\n  - id: '0'\n    name: cat"
        )
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str | int) and not isinstance(item, bool):
            out.append(ConceptInfo(str(item), str(item)))
            continue
        if not isinstance(item, dict) or ("id" not in item and "name" not in item):
            raise ModelFolderError(
                f"{path}: concepts[{i}] must be a mapping with id and name, got {item!r}"
            )
        concept_id = item.get("id", item.get("name"))
        out.append(ConceptInfo(str(concept_id), str(item.get("name", concept_id))))
    return tuple(out)


def parse_checkpoints(path: Path, raw: Any) -> Checkpoints | None:
    """``checkpoints``: type, repo_id and when (``hf_token`` and file patterns are read later)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelFolderError(f"{path}: checkpoints must be a mapping with type and repo_id")
    kind = raw.get("type", "huggingface")
    repo_id = raw.get("repo_id")
    when = raw.get("when", "runtime")
    if not isinstance(repo_id, str) or not repo_id:
        raise ModelFolderError(
            f"{path}: checkpoints.repo_id is missing; add e.g. `repo_id: org/model-name`"
        )
    if when not in CHECKPOINT_WHEN:
        raise ModelFolderError(
            f"{path}: checkpoints.when must be one of {', '.join(CHECKPOINT_WHEN)}, got {when!r}"
        )
    for key in raw:
        if key in _CHECKPOINT_USED:
            continue
        instead = _CHECKPOINT_IGNORED.get(key, f"known keys: {', '.join(sorted(_CHECKPOINT_USED))}")
        verb = (
            "is not used here" if key in _CHECKPOINT_IGNORED else "is not a key edge-runner knows"
        )
        _warn_once(path, f"checkpoints.{key}", f"{path}: `checkpoints.{key}` {verb} ({instead})")
    if kind != "huggingface":
        _warn_once(
            path,
            "checkpoints.type",
            f"{path}: checkpoints.type {kind!r} is not one edge-runner knows (huggingface); "
            "the files are still looked up locally by repo_id",
        )
    if when != "runtime":
        _warn_once(
            path,
            "checkpoints.when",
            f"{path}: checkpoints.when {when!r} is Clarifai's build step; a runner looks the "
            "files up when the model loads (runtime)",
        )
    return Checkpoints(type=str(kind), repo_id=repo_id, when=when)
