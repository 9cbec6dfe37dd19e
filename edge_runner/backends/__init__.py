"""Backends execute tasks on the runner.

- :mod:`.python_model`: a Python model folder (``1/model.py``);
- :mod:`.ollama`: models of a local Ollama (pulled and preloaded by the runner);
- :mod:`.openai_upstream`: the models of any local OpenAI-compatible server;
- :mod:`.mcp_server`: a model folder's MCP server, hosted on the runner.

:mod:`.factory` picks the one a model folder asks for.
"""

from __future__ import annotations

from edge_runner.backends.base import Backend, Reply, StreamReply

__all__ = ["Backend", "Reply", "StreamReply"]
