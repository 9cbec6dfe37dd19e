"""What a control plane is made from: :class:`ControlConfig`, and :func:`build_control`.

config = ControlConfig(port=0, grpc_port=0, data_dir=tmp)
async with build_control(config) as plane:
    print(plane.api_base)
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_runner.config.checks import check_port, check_positive, check_time_scale
from edge_runner.errors import ConfigError
from edge_runner.net import is_loopback

if TYPE_CHECKING:
    from edge_runner.control.server import ControlPlane

__all__ = ["TUNING", "ControlConfig", "build_control", "default_data_dir"]

logger = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """The control plane's data dir when none is given: ``control/`` in the user data dir."""
    from edge_runner.config.paths import data_dir

    return data_dir() / "control"


#: the tuning settings (all above zero): the ``control`` options ``up`` hands on as they are
TUNING = (
    "request_timeout",
    "max_queue",
    "max_batch",
    "max_body_bytes",
    "heartbeat_interval",
    "silence_timeout",
    "lease_ttl",
    "stream_window",
    "stream_buffer_bytes",
    "stream_idle_timeout",
    "max_stream_duration",
    "max_paused_streams",
    "max_connections",
    "max_header_bytes",
    "header_timeout",
    "body_idle_timeout",
    "handshake_timeout",
)

#: durations that ``time_scale`` multiplies
_SCALED = (
    "heartbeat_interval",
    "silence_timeout",
    "lease_ttl",
    "stream_idle_timeout",
    "max_stream_duration",
    "header_timeout",
    "body_idle_timeout",
    "handshake_timeout",
)


@dataclass(frozen=True)
class ControlConfig:
    """How a control plane runs, validated when it is made. Durations are in seconds.

    Construct one and hand it to :func:`build_control` (the CLI, ``up``, ``service install``,
    the tests and the benches all do). The plane itself runs with the config
    :func:`build_control` derives: durations multiplied by ``time_scale``, and the files of
    ``tls_self_signed`` made and set as ``tls_cert``/``tls_key``.

    Raises:
        ConfigError: a value out of range, half a TLS pair, or plain text off loopback
            without ``insecure``.

    Attributes:
        host: address for both the HTTP API and the gRPC tunnel endpoint.
        port: HTTP API port (0 picks a free one).
        grpc_port: gRPC tunnel port (0 picks a free one).
        data_dir: where the SQLite registry and the admin token file live.
        request_timeout: default per-request deadline.
        max_queue: requests that may wait per model before 429.
        max_batch: items one batch request (a JSON array of arguments) may hold (413 above);
            each item is a task and counts against ``max_queue`` like a single request.
        max_body_bytes: largest request body accepted (413 above).
        heartbeat_interval: how often both sides send heartbeats.
        silence_timeout: a tunnel with no message for this long is closed as dead (half-open).
        lease_ttl: how long a runner whose tunnel dropped keeps its tasks (suspect, then lost).
        reconnect_after_ms: the hint a planned stop gives runners.
        tls_cert: PEM server certificate (chain); with ``tls_key`` both the HTTP API and the
            gRPC tunnel serve TLS.
        tls_key: PEM private key of ``tls_cert``.
        stream_window: chunks a streaming task may send ahead of its reader (protocol 1.2
            stream credit); the control plane holds at most this many per stream.
        stream_buffer_bytes: output of one stream the control plane holds for a slow reader,
            about (fewer chunks than the window when chunks are big).
        stream_idle_timeout: a stream whose model sends nothing, or whose reader takes
            nothing, for this long is cancelled.
        max_stream_duration: a stream is cancelled when it has run this long.
        max_paused_streams: streams one token may have stalled on slow readers at once (each
            holds a runner slot); the one over it fails with ``SLOW_READER``.
        max_connections: open connections the HTTP port serves at once (WebSocket tunnels
            included); past it a connection gets 503. Also the most concurrent gRPC tunnels
            (RESOURCE_EXHAUSTED past it).
        max_header_bytes: largest request line + headers accepted on the HTTP port (431 above);
            also the gRPC tunnel's metadata limit.
        header_timeout: how long a connection may take from opening, or a later request from
            its first byte, to the end of its headers (slow or idle clients are cut off).
        body_idle_timeout: the longest pause between two pieces of a request body (not a
            deadline for the whole body; time the server itself holds the body up does not count).
        handshake_timeout: how long a tunnel may take to send its Hello once authenticated,
            and a gRPC connection its TLS/HTTP2 handshake or its first RPC.
        tls_self_signed: make (once) a private CA and a server certificate under ``data_dir``
            and serve TLS with them.
        tls_ca: the private CA that signed ``tls_cert``, when ``tls_self_signed`` made it
            (runners and clients need it as their ``--ca-file``).
        insecure: allow plain text on an address that is not loopback (logged at each start).
        time_scale: multiplies every duration above (``EDGE_RUNNER_TIME_SCALE``: tests and
            chaos drills run the reliability machinery fast; production leaves it at 1).
        registry: where users, tokens, models and runners live: None for the SQLite file in
            ``data_dir`` (the default), or a ``postgresql://`` URL (no password in it: libpq
            reads ``PGPASSFILE``/``PGPASSWORD``) shared by replicas.
        bus: None for the in-process dispatcher (the default), or ``nats://`` URLs (comma
            separated) of a NATS JetStream cluster: task queues, leases and result streams
            shared by replicas. Needs a ``postgresql://`` registry.
        replica_id: this replica's name, unique among live replicas (with ``bus``; defaults to
            the host name).
        advertise_tunnel: the ``HOST:PORT`` runners dial for the gRPC tunnel, as ``/v2/info``
            tells them (with replicas: the load balancer's), instead of this process' own.
        bus_replicas: JetStream stream replicas (1, or 3 on a 3-node NATS cluster).
        nats_creds: a NATS credentials file (never a secret on the command line).
    """

    host: str = "127.0.0.1"
    port: int = 7070
    grpc_port: int = 7071
    data_dir: Path = field(default_factory=default_data_dir)
    request_timeout: float = 60.0
    max_queue: int = 1024
    max_batch: int = 256
    max_body_bytes: int = 32 * 1024 * 1024
    heartbeat_interval: float = 5.0
    silence_timeout: float = 15.0
    lease_ttl: float = 10.0
    reconnect_after_ms: int = 1000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    stream_window: int = 64
    stream_buffer_bytes: int = 4 * 1024 * 1024
    stream_idle_timeout: float = 60.0
    max_stream_duration: float = 1800.0
    max_paused_streams: int = 16
    max_connections: int = 1024
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    handshake_timeout: float = 10.0
    tls_self_signed: bool = False
    tls_ca: Path | None = None
    insecure: bool = False
    time_scale: float = 1.0
    registry: str | None = None
    bus: str | None = None
    replica_id: str | None = None
    advertise_tunnel: str | None = None
    bus_replicas: int = 1
    nats_creds: Path | None = None

    def __post_init__(self) -> None:
        check_port("port", self.port)
        check_port("grpc_port", self.grpc_port)
        for name in TUNING:
            check_positive(name, getattr(self, name))
        check_time_scale(self.time_scale)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")
        if self.tls_self_signed and self.tls_cert is not None:
            raise ConfigError("tls_self_signed makes its own certificate: drop tls_cert/tls_key")
        if not (self.tls or self.tls_self_signed or self.insecure or is_loopback(self.host)):
            raise ConfigError(
                f"refusing to serve plain text on {self.host}: give --tls-cert/--tls-key or "
                "--tls-self-signed, or --insecure for a trusted network"
            )
        if self.bus is not None and not (self.registry or "").startswith("postgresql://"):
            raise ConfigError(
                "--bus needs a shared registry: replicas on one NATS cluster must share users, "
                "tokens and models, so give --registry postgresql://... too (a SQLite registry "
                "is one process' own)"
            )
        if self.bus_replicas not in (1, 3, 5):
            raise ConfigError("--bus-replicas is 1, 3 or 5 (JetStream stream replicas)")

    @property
    def scaled(self) -> bool:
        """Whether this is one replica of several (a NATS bus)."""
        return self.bus is not None

    @property
    def tls(self) -> bool:
        """Whether both endpoints serve TLS."""
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def database(self) -> Path:
        """The SQLite registry file."""
        return self.data_dir / "control.db"

    @property
    def admin_token_file(self) -> Path:
        """The 0600 file holding the bootstrap admin token."""
        return self.data_dir / "admin-token"


def effective_config(config: ControlConfig) -> ControlConfig:
    """``config`` as the plane runs it: data dir resolved, durations scaled, self-signed TLS
    files made (once, under the data dir) and named."""
    changes: dict[str, object] = {
        "data_dir": config.data_dir.expanduser().resolve(),
        "time_scale": 1.0,
    }
    if config.time_scale != 1.0:
        for name in _SCALED:
            changes[name] = getattr(config, name) * config.time_scale
        changes["reconnect_after_ms"] = int(config.reconnect_after_ms * config.time_scale)
    if config.tls_self_signed:
        from edge_runner.control.tls import self_signed

        files = self_signed(Path(str(changes["data_dir"])), [config.host])
        changes.update(
            tls_cert=files.cert, tls_key=files.key, tls_ca=files.ca, tls_self_signed=False
        )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def build_control(config: ControlConfig) -> ControlPlane:
    """The control plane ``config`` describes, not started yet (``async with`` starts it).

    Raises:
        ConfigError: the self-signed TLS files cannot be made.
    """
    from edge_runner.control.server import ControlPlane

    effective = effective_config(config)
    if not (effective.tls or is_loopback(effective.host)):
        logger.warning(
            "serving PLAIN TEXT on %s (--insecure): tokens cross the network unencrypted",
            effective.host,
        )
    return ControlPlane(effective)
