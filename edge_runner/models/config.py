"""A model folder's ``config.yaml``: the model's id and how it wants to be run.

Shape (Clarifai's, so existing folders carry over)::

    model:
      id: hello                    # required, matches MODEL_ID_PATTERN
      user_id: local
      app_id: local
      model_type_id: text-to-text  # default
    inference_compute_info: {cpu_limit: "1", cpu_memory: 500Mi, num_accelerators: 0}
    build_info: {python_version: "3.11"}      # ignored, with one warning
    num_threads: 8                              # tasks run at once (--pool-size wins)
    concepts: [{id: "0", name: cat}]            # on the model instance as ``self.concepts``
    checkpoints: {type: huggingface, repo_id: org/name, when: runtime}

The sections besides ``model`` are read in :mod:`edge_runner.models.config_keys`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_runner.errors import ModelFolderError
from edge_runner.models.compute import ComputeInfo, parse_compute_info
from edge_runner.models.config_keys import (
    Checkpoints,
    ConceptInfo,
    parse_checkpoints,
    parse_concepts,
    parse_num_threads,
    warn_ignored_keys,
)

__all__ = ["CONFIG_FILE", "DEFAULT_MODEL_TYPE_ID", "MODEL_ID_PATTERN", "ModelConfig", "load_config"]

#: The config file's name inside a model folder.
CONFIG_FILE = "config.yaml"

#: The model type used when ``model.model_type_id`` is absent.
DEFAULT_MODEL_TYPE_ID = "text-to-text"

#: What a model id looks like; match with ``MODEL_ID_PATTERN.fullmatch(model_id)``.
MODEL_ID_PATTERN: re.Pattern[str] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_EXAMPLE = "model:\n  id: my-model"


@dataclass(frozen=True)
class ModelConfig:
    """The parsed ``config.yaml`` of a model folder.

    Attributes:
        model_id: ``model.id``; the id requests use.
        user_id: ``model.user_id``, when set.
        app_id: ``model.app_id``, when set.
        model_type_id: ``model.model_type_id`` (``text-to-text`` by default; ``mcp``, ``openai``).
        raw: the whole parsed file, for sections other code reads (``build_info``, ``toolkit``).
        compute: ``inference_compute_info``, checked (GPU placement reads it).
        num_threads: ``num_threads``, tasks run at once, when set (``--pool-size`` wins).
        concepts: ``concepts``, the labels a classifier or detector outputs.
        checkpoints: ``checkpoints``, the weights the model loads, when set.
    """

    model_id: str
    user_id: str | None = None
    app_id: str | None = None
    model_type_id: str = DEFAULT_MODEL_TYPE_ID
    raw: dict[str, Any] = field(default_factory=dict, hash=False)
    compute: ComputeInfo = field(default_factory=ComputeInfo)
    num_threads: int | None = None
    concepts: tuple[ConceptInfo, ...] = ()
    checkpoints: Checkpoints | None = None


def load_config(folder: Path) -> ModelConfig:
    """Read and check ``folder/config.yaml``.

    Raises:
        ModelFolderError: the file is missing, unreadable or not valid YAML, is not a mapping,
            or lacks a valid ``model.id``; the message names the file and what to fix.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ModelFolderError(
            f"{path} not found; a model folder needs a config.yaml with at least:\n{_EXAMPLE}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"cannot read {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ModelFolderError(f"{path}{line}: invalid YAML: {problem}; fix the syntax") from exc
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ModelFolderError(
            f"{path}: expected a mapping at the top level, got {got}; start with:\n{_EXAMPLE}"
        )
    model = data.get("model")
    if not isinstance(model, dict) or "id" not in model:
        raise ModelFolderError(f"{path}: missing `model.id`; add:\n{_EXAMPLE}")
    model_id = model["id"]
    if not isinstance(model_id, str) or not MODEL_ID_PATTERN.fullmatch(model_id):
        raise ModelFolderError(
            f"{path}: model.id {model_id!r} is not a valid model id; use 1-128 letters, digits, "
            "'.', '_', ':' or '-', starting with a letter or digit (quote it if YAML reads it "
            "as a number)"
        )
    for section in ("inference_compute_info", "build_info"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise ModelFolderError(f"{path}: `{section}` must be a mapping of settings")
    compute = parse_compute_info(data.get("inference_compute_info"), path)
    warn_ignored_keys(path, data)
    return ModelConfig(
        compute=compute,
        num_threads=parse_num_threads(path, data.get("num_threads")),
        concepts=parse_concepts(path, data.get("concepts")),
        checkpoints=parse_checkpoints(path, data.get("checkpoints")),
        model_id=model_id,
        user_id=_optional_str(path, model, "user_id"),
        app_id=_optional_str(path, model, "app_id"),
        model_type_id=_optional_str(path, model, "model_type_id") or DEFAULT_MODEL_TYPE_ID,
        raw=data,
    )


def _optional_str(path: Path, model: dict[str, Any], key: str) -> str | None:
    value = model.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ModelFolderError(f"{path}: model.{key} must be a string, got {value!r}; quote it")
