"""``clarifai.runners.models.model_builder.ModelBuilder``, the part model folders call.

Clarifai folders fetch their weights in ``load_model()`` with::

    builder = ModelBuilder(model_path, download_validation_only=True)
    checkpoints = builder.download_checkpoints(stage="runtime")

Here ``download_checkpoints`` finds them on this machine instead
(:func:`edge_runner.models.checkpoints.find_checkpoints`) and says where to put them when they
are missing. Building images and uploading are Clarifai's cloud and not provided.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_runner.errors import ModelFolderError
from edge_runner.models.checkpoints import find_checkpoints
from edge_runner.models.config import load_config

__all__ = ["ModelBuilder"]


class ModelBuilder:
    """A model folder's config and checkpoints.

    Args:
        folder: the model folder (holding config.yaml).
        validate_api_ids: accepted for compatibility; there is no API to check here.
        download_validation_only: accepted for compatibility.
        **_: other options of Clarifai's builder, accepted and unused.
    """

    def __init__(
        self,
        folder: str | Path,
        validate_api_ids: bool = True,
        download_validation_only: bool = False,
        **_: Any,
    ) -> None:
        self.folder = str(Path(folder).expanduser().resolve())
        self._config = load_config(Path(self.folder))

    @property
    def config(self) -> dict[str, Any]:
        """config.yaml, parsed."""
        return self._config.raw

    def download_checkpoints(
        self, stage: str = "runtime", checkpoint_path_override: str | None = None
    ) -> str:
        """The local folder holding the checkpoints config.yaml names.

        Raises:
            ModelFolderError: config.yaml has no ``checkpoints``, or they are not here (the
                message names where to put them).
        """
        if checkpoint_path_override:
            return checkpoint_path_override
        section = self._config.checkpoints
        if section is None:
            raise ModelFolderError(
                f"{self.folder}/config.yaml has no `checkpoints` section; add one with "
                "type: huggingface and repo_id: org/name"
            )
        raw = self._config.raw.get("checkpoints")
        return str(
            find_checkpoints(Path(self.folder), section, raw if isinstance(raw, dict) else None)
        )
