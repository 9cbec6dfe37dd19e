"""edge-runner: a local-first runner for AI models.

Kept light on purpose: importing ``edge_runner`` pulls in no gRPC, web or UI libraries.
"""

from __future__ import annotations

from edge_runner._version import __version__
from edge_runner.models.model_class import MCPModelClass, ModelClass
from edge_runner.models.openai_class import OpenAIModelClass

__all__ = ["MCPModelClass", "ModelClass", "OpenAIModelClass", "__version__"]
