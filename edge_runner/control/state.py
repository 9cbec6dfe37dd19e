"""The control plane's shared state: settings, registry, auth, catalog, dispatcher, runners."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from edge_runner.control.auth import Authenticator
from edge_runner.control.catalog import Catalog
from edge_runner.control.config import ControlConfig
from edge_runner.control.dispatch import Dispatcher, RunnerLink
from edge_runner.control.registry import Registry, RunnerRecord, TokenInfo, hash_token
from edge_runner.control.runner_logs import RunnerLogs
from edge_runner.control.tasks import Task
from edge_runner.errors import ErrorCode
from edge_runner.models.config import MODEL_ID_PATTERN
from edge_runner.models.wire import signatures_from_spec
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession, SessionState
from edge_runner.protocol.session import InflightTask
from edge_runner.views import ReplicaView, RunnerGpuView, RunnerInfoView, RunnerView

__all__ = ["ControlState", "runner_id_taken"]


def runner_id_taken(runner_id: str) -> str:
    """Why a caller may not use ``runner_id``: another user's runner registered it first."""
    return (
        f"runner id {runner_id!r} belongs to another user of this control plane (an id is "
        "bound to the user whose runner first registered it); start the runner without "
        "--runner-id to get an id of its own"
    )


logger = logging.getLogger(__name__)


class ControlState:
    """Everything the API and the tunnel endpoints share."""

    def __init__(self, settings: ControlConfig, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.auth = Authenticator(registry)
        self.catalog = Catalog(registry)
        self.dispatcher = Dispatcher(
            max_queue=settings.max_queue,
            stream_window=settings.stream_window,
            stream_buffer_bytes=settings.stream_buffer_bytes,
            max_paused_streams=settings.max_paused_streams,
        )
        registry.mark_all_disconnected(time.time())
        self.grpc_address = ""
        #: the HTTP base URL this process serves (set once it listens)
        self.api_base = ""
        self.started = time.time()
        #: runners whose tunnel dropped, with the timer that declares them lost
        self.suspects: dict[str, tuple[RunnerLink, asyncio.TimerHandle]] = {}
        self._refused_tokens: set[str] = set()
        #: runners told (once each) that their protocol has no stream back-pressure
        self._unflowed: set[str] = set()
        self.closing = False
        #: runner logs that came over the tunnels
        self.logs = RunnerLogs()

    def runner_principal(self, header: str | None, peer: str) -> TokenInfo | None:
        """Check a tunnel's bearer token; a refused token is logged once, then at DEBUG."""
        principal = self.auth.verify_header(header)
        if principal is not None and "runner" in principal.scopes:
            return principal
        fingerprint = hash_token(header or "")[:16]
        log = logger.debug if fingerprint in self._refused_tokens else logger.warning
        self._refused_tokens.add(fingerprint)
        log("refused a runner tunnel from %s: missing or invalid token", peer)
        return None

    def revoke_token(self, user_id: str, token_id: str) -> int | None:
        """Revoke a token and close the tunnels opened with it.

        Returns:
            How many tunnels were closed, or None when the user has no such live token.
        """
        token_hash = self.registry.revoke_token(user_id, token_id)
        if token_hash is None:
            return None
        self.auth.forget(token_hash)
        closed = 0
        for link in list(self.dispatcher.links.values()):
            if link.token_id == token_id:
                link.revoked = True
                link.outbox.put_nowait(None)
                closed += 1
        logger.info("token %s of %s revoked; %d tunnel(s) closed", token_id, user_id, closed)
        return closed

    def new_task(self, caller: TokenInfo, model_id: str, method: str, payload: bytes) -> Task:
        """Create a task for ``caller``'s request with a fresh id and the default deadline."""
        deadline_ms = int((time.time() + self.settings.request_timeout) * 1000)
        return Task(
            uuid.uuid4().hex,
            caller.user_id,
            model_id,
            method,
            payload,
            deadline_ms,
            token_id=caller.token_id,
        )

    def register_runner(
        self, user_id: str, session: ControlSession, token_id: str = ""
    ) -> RunnerLink | None:
        """Validate a runner's Hello and start routing to it.

        A runner that comes back while suspect (its old tunnel dropped less than ``lease_ttl``
        ago, or is still open but dead) resumes the tasks it lists in ``Hello.inflight``; its
        other leased tasks are treated as lost.

        Returns:
            The runner's link, or None when it was refused (the session holds the reason).
        """
        hello = session.hello
        assert hello is not None  # the session only hands us a link after a Hello
        owner = self.registry.runner_owner(hello.runner_id)
        if owner is not None and owner != user_id:
            # Checked before anything else: the id's earlier link (suspect or half-open), its
            # tasks, record and logs all belong to its owner and must stay untouched.
            logger.warning(
                "refused runner %s for user %s: that runner id belongs to user %s",
                hello.runner_id,
                user_id,
                owner,
            )
            session.reject(ErrorCode.PERMISSION_DENIED, runner_id_taken(hello.runner_id))
            return None
        for spec in hello.models:
            problem = _spec_problem(spec)
            if problem is not None:
                logger.warning("refused runner %s: %s", hello.runner_id, problem)
                session.reject(ErrorCode.INVALID_SPEC, problem)
                return None
            served = any(
                link.runner_id != hello.runner_id
                for link in self.dispatcher.runners_for(user_id, spec.model_id)
            )
            reason = self.catalog.conflict(user_id, spec, served)
            if reason is not None:
                logger.warning("refused runner %s: %s", hello.runner_id, reason)
                session.reject(ErrorCode.SIGNATURE_CONFLICT, reason)
                return None
        previous = self._take_previous(hello.runner_id)
        new_models = set()
        for spec in hello.models:
            if self.catalog.get(user_id, spec.model_id) is None:
                new_models.add(spec.model_id)
            self.catalog.register(user_id, spec)
        self.registry.upsert_runner(
            RunnerRecord(hello.runner_id, user_id, _runner_info(hello), "connected", time.time())
        )
        link = RunnerLink(hello.runner_id, user_id, session)
        link.token_id = token_id
        link.new_models = new_models
        adopted: dict[tuple[str, int], InflightTask] = {}
        if previous is not None:
            inflight = [(ref.task_id, ref.attempt) for ref in hello.inflight]
            adopted = self.dispatcher.adopt(previous, link, inflight)
            self.dispatcher.detach(previous)  # what it no longer holds is lost
        self.dispatcher.attach(link, tuple(spec.model_id for spec in hello.models))
        session.accept(hello.runner_id, adopted)
        if session.minor_mismatch:
            logger.info(
                "runner %s speaks protocol %d.%d; accepted",
                hello.runner_id,
                hello.protocol.major,
                hello.protocol.minor,
            )
        unflowed = not session.stream_credit and self.settings.stream_window > 0
        if unflowed and hello.runner_id not in self._unflowed:
            self._unflowed.add(hello.runner_id)
            logger.warning(
                "runner %s speaks protocol %d.%d, before stream credit (1.2): its streams have "
                "no back-pressure, so a slow reader makes this control plane buffer their "
                "output; upgrade the runner",
                hello.runner_id,
                hello.protocol.major,
                hello.protocol.minor,
            )
        logger.info(
            "runner %s %s from %s serving %s (%d slots%s)",
            hello.runner_id,
            "is back" if previous is not None else "registered",
            hello.hostname or "?",
            ", ".join(spec.model_id for spec in hello.models) or "nothing",
            hello.pool_size,
            f", {len(adopted)} task(s) resumed" if adopted else "",
        )
        return link

    def model_status(self, link: RunnerLink, status: pb.ModelStatus) -> None:
        """Apply a runner's ModelStatus: route only to READY models, drop FAILED ones."""
        model_id = status.model_id
        if model_id not in link.model_ids or status.state not in _KNOWN_STATES:
            logger.debug("runner %s sent a status for %r; ignored", link.runner_id, model_id)
            return
        status = _bounded(status)
        previous = link.model_status.get(model_id)
        if status.state == pb.FAILED:
            served = self.dispatcher.withdraw(link, model_id, status.message)
            logger.warning(
                "runner %s withdrew %s: %s", link.runner_id, model_id, status.message or "?"
            )
            if not served and model_id in link.new_models:
                self.catalog.remove(link.user_id, model_id)  # nothing half-registered
            return
        self.dispatcher.set_model_status(link, status)
        was = pb.READY if previous is None else previous.state
        if was != status.state:
            logger.info(
                "%s on runner %s is %s%s",
                model_id,
                link.runner_id,
                pb.ModelState.Name(status.state).lower(),
                f" ({status.message})" if status.message else "",
            )

    def drain_runner(self, user_id: str, runner_id: str) -> bool:
        """Ask one of the user's connected runners to drain; False when none such is connected.

        The runner stops taking tasks at once (no new ones are routed to it) and finishes the
        ones it has; its tunnel stays up, so its status and logs stay visible.
        """
        link = self.dispatcher.links.get(runner_id)
        if link is None or link.user_id != user_id:
            return False
        link.session.send_drain("drained from the control plane")
        link.flush()
        logger.info("runner %s asked to drain", runner_id)
        return True

    def _take_previous(self, runner_id: str) -> RunnerLink | None:
        """The runner's earlier link, if it is suspect or (half-open) still attached."""
        suspect = self.suspects.pop(runner_id, None)
        if suspect is not None:
            link, timer = suspect
            timer.cancel()
            return link
        old = self.dispatcher.links.get(runner_id)
        if old is None:
            return None
        # The same runner id while its old tunnel looks open: that tunnel is dead or
        # half-open. Close it; the new one takes over its tasks.
        logger.info("runner %s reconnected; closing its previous tunnel", runner_id)
        self.dispatcher.suspend(old)
        old.outbox.put_nowait(None)
        return old

    def tunnel_closed(self, link: RunnerLink) -> None:
        """A runner's tunnel ended: lost at once if it said Goodbye, else suspect for a lease."""
        if self.closing or self.dispatcher.links.get(link.runner_id) is not link:
            return  # stopping, or replaced by a newer tunnel that took over its tasks
        if link.said_goodbye or link.revoked:
            self._lost(link, "its token was revoked" if link.revoked else "it said goodbye")
            return

        self.dispatcher.suspend(link)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.settings.lease_ttl, self._lost, link, "its lease expired")
        self.suspects[link.runner_id] = (link, timer)
        self.registry.set_runner_status(link.runner_id, "suspect", time.time())
        logger.info(
            "runner %s is suspect (%s); its %d task(s) wait %g s for it to come back",
            link.runner_id,
            "silent" if link.silent else link.close_error or "tunnel closed",
            len(link.tasks),
            self.settings.lease_ttl,
        )

    def _lost(self, link: RunnerLink, why: str) -> None:
        current = self.suspects.get(link.runner_id)
        if current is not None and current[0] is link:
            del self.suspects[link.runner_id]
        held = len(link.tasks)
        self.dispatcher.detach(link)
        self.registry.set_runner_status(link.runner_id, "disconnected", time.time())
        logger.info(
            "runner %s disconnected (%s)%s",
            link.runner_id,
            why,
            f"; {held} task(s) re-queued or failed" if held else "",
        )

    async def monitor(self) -> None:
        """Send heartbeats to every runner and close tunnels that went silent (half-open)."""
        interval = self.settings.heartbeat_interval
        while True:
            # A fine tick keeps heartbeats close to their interval: the runner gives up on a
            # tunnel after three silent intervals.
            await asyncio.sleep(min(interval / 4, self.settings.silence_timeout / 3))
            now = time.monotonic()
            self.dispatcher.check_stalled(now, self.settings.stream_idle_timeout)
            for link in list(self.dispatcher.links.values()):
                if now - link.last_seen > self.settings.silence_timeout:
                    logger.warning(
                        "runner %s sent nothing for %.1f s; closing its tunnel",
                        link.runner_id,
                        now - link.last_seen,
                    )
                    link.silent = True
                    link.outbox.put_nowait(None)
                elif now - link.last_heartbeat_sent >= interval:
                    link.last_heartbeat_sent = now
                    link.session.send_heartbeat()
                    link.flush()

    def close(self) -> None:
        """Cancel lease timers (the process is stopping)."""
        self.closing = True
        for _, timer in self.suspects.values():
            timer.cancel()
        self.suspects.clear()

    async def registry_health(self) -> str:
        """``ok``, or why the registry does not answer (a SQLite file always does)."""
        return "ok"

    async def bus_health(self) -> str:
        """``ok``, or why the task bus does not answer (the in-process one always does)."""
        return "ok"

    async def replicas_view(self, this: ReplicaView) -> list[ReplicaView]:
        """The live replicas, this one (``this``) first: an embedded plane is the only one."""
        return [this]

    def runners_view(self, user_id: str) -> list[RunnerView]:
        """The user's runners: registry records merged with live tunnel state."""
        out: list[RunnerView] = []
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
            view: RunnerView = {
                "id": record.runner_id,
                **record.info,
                "status": status,
                "busy": busy,
                "free": free,
                "last_seen": last_seen,
            }
            if link is not None:
                view["gpus"], view["gpu_note"] = _gpus_view(record.info, link)
            out.append(view)
        return out


_KNOWN_STATES = (pb.LOADING, pb.READY, pb.UNAVAILABLE, pb.FAILED)
_MAX_STATUS_MESSAGE = 500


def _bounded(status: pb.ModelStatus) -> pb.ModelStatus:
    """A runner's status with its message cut to size and progress in [0, 1]."""
    progress = status.progress if 0.0 <= status.progress <= 1.0 else 0.0  # NaN fails both
    return pb.ModelStatus(
        model_id=status.model_id,
        state=status.state,
        message=status.message[:_MAX_STATUS_MESSAGE],
        progress=progress,
        eta_ms=status.eta_ms,
    )


def _spec_problem(spec: pb.ModelSpec) -> str | None:
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


def _gpus_view(info: RunnerInfoView, link: RunnerLink) -> tuple[list[RunnerGpuView], str]:
    """The machine's GPUs from the last heartbeat; ``assigned`` marks the runner's own."""
    assigned = {g["index"]: g for g in info.get("gpus", [])}
    gpus: list[RunnerGpuView] = []
    for sample in link.gpu_samples:
        placed = assigned.get(sample.index)
        gpus.append(
            {
                "index": sample.index,
                "name": placed["name"] if placed else "",
                "assigned": placed is not None,
                "utilization": sample.utilization if sample.HasField("utilization") else None,
                "memory_used": sample.memory_used_bytes,
                "memory_total": sample.memory_total_bytes,
                "temperature": sample.temperature if sample.HasField("temperature") else None,
            }
        )
    if not gpus:  # no heartbeat yet: what the Hello registered
        gpus = [{**g, "assigned": True} for g in assigned.values()]
    return gpus, link.gpu_note


def _runner_info(hello: pb.Hello) -> RunnerInfoView:
    """What a Hello says about its runner, as stored and shown: every string is cut to size and
    rid of control characters (tables and logs print them to terminals)."""
    labels = list(hello.labels.items())[:_MAX_LABELS]
    return {
        "hostname": _printable(hello.hostname, 255),
        "version": _printable(hello.version, 64),
        "nodepool": _printable(hello.nodepool, 64),
        "labels": {_printable(k, 63): _printable(v, 256) for k, v in labels},
        "pool_size": hello.pool_size,
        "models": [spec.model_id for spec in hello.models],
        "gpus": [
            {
                "index": g.index,
                "uuid": _printable(g.uuid, 96),
                "name": _printable(g.name, 128),
                "memory_total": g.memory_total_bytes,
            }
            for g in hello.gpus[:_MAX_GPUS]
        ],
    }


_MAX_LABELS = 64
_MAX_GPUS = 64


def _printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, control and format characters shown as ``?``."""
    text = text[:limit]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)
