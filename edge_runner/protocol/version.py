"""Protocol version rules: a major mismatch is refused, a minor one is accepted."""

from __future__ import annotations

from edge_runner.errors import VersionMismatch
from edge_runner.proto import tunnel_pb2 as pb

__all__ = ["PROTOCOL_VERSION", "check_version", "format_version"]

PROTOCOL_VERSION: tuple[int, int] = (1, 3)


def format_version(version: pb.ProtocolVersion | tuple[int, int]) -> str:
    """Render a protocol version as ``major.minor``."""
    if isinstance(version, tuple):
        return f"{version[0]}.{version[1]}"
    return f"{version.major}.{version.minor}"


def check_version(peer: pb.ProtocolVersion) -> bool:
    """Check a peer's protocol version against ours.

    Returns:
        True when the minor versions differ (accepted, worth one log line), else False.

    Raises:
        VersionMismatch: the major versions differ; the message names both.
    """
    if peer.major != PROTOCOL_VERSION[0]:
        raise VersionMismatch(
            f"protocol version {format_version(peer)} is not compatible with "
            f"{format_version(PROTOCOL_VERSION)} (major versions differ); "
            "upgrade the older of runner and control plane"
        )
    return peer.minor != PROTOCOL_VERSION[1]
