"""Backends execute tasks on the runner: Python model folders now; Ollama and MCP later."""

from __future__ import annotations

from edge_runner.backends.base import Backend, BackendError, Reply, StreamReply

__all__ = ["Backend", "BackendError", "Reply", "StreamReply"]
