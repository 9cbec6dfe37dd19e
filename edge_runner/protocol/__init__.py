"""The sans-I/O tunnel protocol: frames in, events and frames out.

Nothing here touches sockets, asyncio or grpc: the gRPC and WebSocket transports only move the
bytes that :class:`ControlSession` and :class:`RunnerSession` produce and consume.
"""

from __future__ import annotations

from edge_runner.protocol.codec import decode_control, decode_runner, encode
from edge_runner.protocol.session import (
    RUNNER_ID_PATTERN,
    ControlEvent,
    ControlSession,
    RunnerEvent,
    RunnerSession,
    SessionState,
)
from edge_runner.protocol.version import PROTOCOL_VERSION, check_version, format_version

__all__ = [
    "PROTOCOL_VERSION",
    "RUNNER_ID_PATTERN",
    "ControlEvent",
    "ControlSession",
    "RunnerEvent",
    "RunnerSession",
    "SessionState",
    "check_version",
    "decode_control",
    "decode_runner",
    "encode",
    "format_version",
]
