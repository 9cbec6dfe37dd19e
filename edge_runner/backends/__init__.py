"""Backends execute tasks on the runner: Python model folders now; Ollama and MCP later."""

from __future__ import annotations

from edge_runner.backends.base import Backend, Reply, StreamReply

__all__ = ["Backend", "Reply", "StreamReply"]
