"""How a runner runs: the settings the daemon, its tunnel connection and its views share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_runner.runner.transport import TransportKind

__all__ = ["RunnerSettings"]


@dataclass(frozen=True)
class RunnerSettings:
    """How a runner runs. Durations in seconds.

    Attributes:
        api_base: the control plane's HTTP base URL (the tunnel address comes from /v2/info).
        token: the runner's bearer token (never logged; excluded from repr).
        pool_size: worker threads, i.e. tasks run at once.
        grace_period: how long a drain waits for in-flight tasks.
        transport: gRPC stream or WebSocket.
        tunnel_address: skip discovery and dial this gRPC ``host:port``.
        ca_file: a private CA to verify the control plane's TLS certificate (default: the
            system store).
    """

    api_base: str
    token: str = field(repr=False)
    pool_size: int = 32
    nodepool: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    grace_period: float = 30.0
    backoff_initial: float = 0.5
    backoff_cap: float = 10.0
    transport: TransportKind = TransportKind.GRPC
    tunnel_address: str | None = None
    ca_file: Path | None = None
