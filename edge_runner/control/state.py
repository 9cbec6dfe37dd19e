"""The control plane's shared state: settings, registry, auth, catalog, dispatcher, runners."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runner.control.auth import Authenticator
from edge_runner.control.catalog import Catalog
from edge_runner.control.dispatch import Dispatcher, RunnerLink, Task
from edge_runner.control.registry import Registry, RunnerRecord
from edge_runner.models.config import MODEL_ID_PATTERN
from edge_runner.models.wire import signatures_from_spec
from edge_runner.protocol import ControlSession, SessionState

__all__ = ["ControlSettings", "ControlState"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlSettings:
    """How a control plane runs. Durations are in seconds.

    Attributes:
        host: address for both the HTTP API and the gRPC tunnel endpoint.
        port: HTTP API port (0 picks a free one).
        grpc_port: gRPC tunnel port (0 picks a free one).
        data_dir: where the SQLite registry and the admin token file live.
        request_timeout: default per-request deadline.
        max_queue: requests that may wait per model before 429.
        max_body_bytes: largest request body accepted (413 above).
        heartbeat_interval: how often runners send heartbeats.
        lease_ttl: how long a silent runner keeps its tasks.
        reconnect_after_ms: the hint a planned stop gives runners.
    """

    host: str = "127.0.0.1"
    port: int = 7070
    grpc_port: int = 7071
    data_dir: Path = field(default_factory=lambda: Path("."))
    request_timeout: float = 60.0
    max_queue: int = 1024
    max_body_bytes: int = 32 * 1024 * 1024
    heartbeat_interval: float = 5.0
    lease_ttl: float = 10.0
    reconnect_after_ms: int = 1000

    @property
    def database(self) -> Path:
        """The SQLite registry file."""
        return self.data_dir / "control.db"

    @property
    def admin_token_file(self) -> Path:
        """The 0600 file holding the bootstrap admin token."""
        return self.data_dir / "admin-token"


class ControlState:
    """Everything the API and the tunnel endpoints share."""

    def __init__(self, settings: ControlSettings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.auth = Authenticator(registry)
        self.catalog = Catalog(registry)
        self.dispatcher = Dispatcher(max_queue=settings.max_queue)
        self.grpc_address = ""
        self.started = time.time()

    def new_task(self, user_id: str, model_id: str, method: str, payload: bytes) -> Task:
        """Create a task with a fresh id and the default deadline."""
        deadline_ms = int((time.time() + self.settings.request_timeout) * 1000)
        return Task(uuid.uuid4().hex, user_id, model_id, method, payload, deadline_ms)

    def register_runner(self, user_id: str, session: ControlSession) -> RunnerLink | None:
        """Validate a runner's Hello and start routing to it.

        Returns:
            The runner's link, or None when it was refused (the session holds the reason).
        """
        hello = session.hello
        assert hello is not None  # the session only hands us a link after a Hello
        old = self.dispatcher.links.get(hello.runner_id)
        if old is not None:
            # Same runner id again: the old tunnel is dead or half-open; the new one wins.
            logger.info("runner %s reconnected; closing its previous tunnel", hello.runner_id)
            self.unregister_runner(old)
            old.outbox.put_nowait(None)
        for spec in hello.models:
            problem = _spec_problem(spec)
            if problem is not None:
                logger.warning("refused runner %s: %s", hello.runner_id, problem)
                session.reject("INVALID_SPEC", problem)
                return None
            served = any(
                link.runner_id != hello.runner_id
                for link in self.dispatcher.runners_for(user_id, spec.model_id)
            )
            reason = self.catalog.conflict(user_id, spec, served)
            if reason is not None:
                logger.warning("refused runner %s: %s", hello.runner_id, reason)
                session.reject("SIGNATURE_CONFLICT", reason)
                return None
        for spec in hello.models:
            self.catalog.register(user_id, spec)
        self.registry.upsert_runner(
            RunnerRecord(hello.runner_id, user_id, _runner_info(hello), "connected", time.time())
        )
        link = RunnerLink(hello.runner_id, user_id, session)
        self.dispatcher.attach(link, tuple(spec.model_id for spec in hello.models))
        session.accept(hello.runner_id)
        if session.minor_mismatch:
            logger.info(
                "runner %s speaks protocol %d.%d; accepted",
                hello.runner_id,
                hello.protocol.major,
                hello.protocol.minor,
            )
        logger.info(
            "runner %s registered from %s serving %s (%d slots)",
            hello.runner_id,
            hello.hostname or "?",
            ", ".join(spec.model_id for spec in hello.models) or "nothing",
            hello.pool_size,
        )
        return link

    def unregister_runner(self, link: RunnerLink) -> None:
        """Forget a runner whose tunnel closed; its tasks are re-queued or failed."""
        if self.dispatcher.links.get(link.runner_id) is not link:
            return
        self.dispatcher.detach(link)
        self.registry.set_runner_status(link.runner_id, "disconnected", time.time())
        logger.info("runner %s disconnected", link.runner_id)

    def runners_view(self, user_id: str) -> list[dict[str, Any]]:
        """The user's runners: registry records merged with live tunnel state."""
        out = []
        for record in self.registry.runners():
            if record.user_id != user_id:
                continue
            link = self.dispatcher.links.get(record.runner_id)
            status = record.status
            busy = free = 0
            last_seen = record.last_seen
            if link is not None:
                last_seen = time.time() - (time.monotonic() - link.last_seen)
                status = "draining" if link.session.state is SessionState.DRAINING else "connected"
                busy = len(link.tasks)
                free = sum(link.free_slots(m) for m in link.model_ids)
            out.append(
                {
                    "id": record.runner_id,
                    **record.info,
                    "status": status,
                    "busy": busy,
                    "free": free,
                    "last_seen": last_seen,
                }
            )
        return out


def _spec_problem(spec: Any) -> str | None:
    """Why a runner's model spec cannot be registered, or None when it is well-formed."""
    if not MODEL_ID_PATTERN.fullmatch(spec.model_id):
        return (
            f"model id {spec.model_id!r} is not valid: use letters, digits and . _ : - "
            "(at most 128 characters, starting with a letter or digit)"
        )
    try:
        signatures_from_spec(spec)
    except ValueError as exc:
        return f"model {spec.model_id!r} has a malformed method signature: {exc}"
    return None


def _runner_info(hello: Any) -> dict[str, Any]:
    return {
        "hostname": hello.hostname,
        "version": hello.version,
        "nodepool": hello.nodepool,
        "labels": dict(hello.labels),
        "pool_size": hello.pool_size,
        "models": [spec.model_id for spec in hello.models],
        "gpus": [
            {"index": g.index, "uuid": g.uuid, "name": g.name, "memory_total": g.memory_total_bytes}
            for g in hello.gpus
        ],
    }
