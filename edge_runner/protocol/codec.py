"""Frame codec: one protobuf message per frame, decoded defensively.

A frame that does not parse, or parses to an envelope with no message in it, is a
:class:`~edge_runner.errors.ProtocolError`; the transport closes that tunnel, never the server.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError

from edge_runner.errors import ProtocolError
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["MAX_FRAME_BYTES", "decode_control", "decode_runner", "encode"]

#: Largest frame either side accepts (matches the HTTP body limit plus envelope room).
MAX_FRAME_BYTES = 64 * 1024 * 1024

_Envelope = TypeVar("_Envelope", pb.RunnerMessage, pb.ControlMessage)


def encode(message: pb.RunnerMessage | pb.ControlMessage) -> bytes:
    """Serialize one envelope to a frame."""
    return message.SerializeToString()


def _decode(data: bytes, cls: type[_Envelope]) -> _Envelope:
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME_BYTES} limit")
    envelope = cls()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed frame ({len(data)} bytes): {exc}") from exc
    if envelope.WhichOneof("kind") is None:
        raise ProtocolError(f"frame ({len(data)} bytes) carries no {cls.__name__}")
    return envelope


def decode_runner(data: bytes) -> pb.RunnerMessage:
    """Decode a frame sent by a runner."""
    return _decode(data, pb.RunnerMessage)


def decode_control(data: bytes) -> pb.ControlMessage:
    """Decode a frame sent by the control plane."""
    return _decode(data, pb.ControlMessage)
