"""User models: ModelClass, method signatures and the model-folder loader.

Importing this package pulls in no ML, network or UI libraries.
"""

from __future__ import annotations

from edge_runner.models.config import MODEL_ID_PATTERN, ModelConfig, load_config
from edge_runner.models.loader import ModelFolder, load_model_folder
from edge_runner.models.model_class import (
    ModelClass,
    current_cancel_event,
    iterate_with_cancel_event,
    run_with_cancel_event,
)
from edge_runner.models.signatures import (
    MethodKind,
    MethodSignature,
    Param,
    input_stream_param,
    parse_cli_value,
    signature_hash,
    signature_of,
    signatures_of,
    validate_arguments,
)

__all__ = [
    "MODEL_ID_PATTERN",
    "MethodKind",
    "MethodSignature",
    "ModelClass",
    "ModelConfig",
    "ModelFolder",
    "Param",
    "current_cancel_event",
    "input_stream_param",
    "iterate_with_cancel_event",
    "load_config",
    "load_model_folder",
    "parse_cli_value",
    "run_with_cancel_event",
    "signature_hash",
    "signature_of",
    "signatures_of",
    "validate_arguments",
]
