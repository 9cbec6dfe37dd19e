"""A runner process, assembled: :class:`RunnerConfig` → :func:`build_runner` → serve.

    daemon = build_runner(RunnerConfig(ModelSource(Path("examples/hello")), context="local"))
    try:
        asyncio.run(daemon.serve())
    finally:
        daemon.close()

``edge-runner runner`` is exactly this with a config made from its options; ``up``, the
service units (through ``edge-runner runner``), :mod:`edge_runner.testing` and the benches
build runners the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from edge_runner.backends.base import Backend, StatusListener
from edge_runner.backends.source import ModelSource, build_backend
from edge_runner.config.checks import check_positive, check_time_scale
from edge_runner.errors import ConfigError
from edge_runner.net import is_loopback
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import RUNNER_ID_PATTERN
from edge_runner.runner import Runner, RunnerSettings
from edge_runner.runner.transport import TransportKind

if TYPE_CHECKING:
    from edge_runner.backends.ollama_serve import OllamaServe
    from edge_runner.daemons.telemetry import RunnerTelemetry
    from edge_runner.runner.events import LogBuffer
    from edge_runner.runner.identity import RunnerIdentity
    from edge_runner.service.notify import Notifier
    from edge_runner.telemetry import Sampler

__all__ = ["DEFAULT_POOL_SIZE", "RunnerConfig", "RunnerDaemon", "build_runner"]

logger = logging.getLogger(__name__)

#: tasks a runner runs at once unless told (an Ollama runner: what Ollama runs at once)
DEFAULT_POOL_SIZE = 32


@dataclass(frozen=True)
class RunnerConfig:
    """How a runner runs, validated when it is made. Durations in seconds.

    Attributes:
        source: what it serves.
        context: the context naming the control plane and token (default: the active one).
        api_base: the control plane's URL (beats the context's).
        token: the token to connect with (default: the context's; never logged).
        enroll: trade a user token (``er_pat_``) for a runner credential of its own, kept in
            the secret store, before connecting.
        runner_id: use this id instead of the one kept for ``source`` on this machine.
        pool_size: tasks run at once (default: the folder's config.yaml ``num_threads``, else
            32; for Ollama, what Ollama runs at once).
        grace_period: how long a stop waits for in-flight tasks.
        backoff_initial: the first wait before redialling a lost control plane; each failure
            doubles it (with jitter) up to ``backoff_cap``.
        backoff_cap: the longest wait between two dials.
        transport: gRPC stream or WebSocket.
        tunnel_address: dial this gRPC ``host:port`` instead of the address the control plane
            announces (a relay in between).
        ca_file: a private CA for the control plane's TLS certificate (default: the
            context's, else the system store).
        gpus: the GPU indices the model may use (``()``: none; default: placed by the model
            folder's ``inference_compute_info``).
        insecure: allow plain text to a control plane that is not on loopback.
        local_api: serve the runner's local API (status, logs, metrics) and keep its logs.
        verbose: show the logs of an ``ollama serve`` the runner starts.
        time_scale: multiplies the backoff and probe intervals (``EDGE_RUNNER_TIME_SCALE``).

    Raises:
        ConfigError: a value out of range or a malformed runner id.
    """

    source: ModelSource = field(default_factory=ModelSource)
    context: str | None = None
    api_base: str | None = None
    token: str | None = field(default=None, repr=False)
    enroll: bool = True
    runner_id: str | None = None
    pool_size: int | None = None
    grace_period: float = 30.0
    backoff_initial: float = 0.5
    backoff_cap: float = 10.0
    transport: TransportKind = TransportKind.GRPC
    tunnel_address: str | None = None
    ca_file: Path | None = None
    gpus: tuple[int, ...] | None = None
    insecure: bool = False
    local_api: bool = True
    verbose: bool = False
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.pool_size is not None:
            check_positive("pool_size", self.pool_size)
        for name in ("grace_period", "backoff_initial", "backoff_cap"):
            check_positive(name, getattr(self, name))
        check_time_scale(self.time_scale)
        if self.runner_id is not None and not RUNNER_ID_PATTERN.fullmatch(self.runner_id):
            raise ConfigError(
                f"--runner-id {ascii(self.runner_id[:40])} is not valid: use 1-128 letters, "
                "digits and . _ : @ -, starting with a letter or digit"
            )


class RunnerDaemon:
    """A built runner and what it holds: the backend, its id's lock, telemetry, an
    ``ollama serve`` it started. :meth:`serve` runs it; :meth:`close` lets go of the rest."""

    def __init__(
        self,
        config: RunnerConfig,
        runner: Runner,
        *,
        identity: RunnerIdentity | None = None,
        telemetry: RunnerTelemetry | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.backend: Backend = runner.backend
        self.identity = identity
        self.telemetry = telemetry
        self.logs: LogBuffer | None = None
        self.ollama: OllamaServe | None = None
        if config.local_api:
            from edge_runner.runner.events import LogBuffer

            self.logs = LogBuffer(runner.hub)

    @property
    def settings(self) -> RunnerSettings:
        """The settings the runner runs with."""
        return self.runner.settings

    def ready_info(self) -> dict[str, Any]:
        """What the runner serves, as the ready line tells a supervisor (``up``)."""
        from edge_runner.models.wire import signatures_from_spec

        specs = self.backend.specs()
        spec = specs[0]
        return {
            "runner_id": self.runner.runner_id,
            "model_id": spec.model_id,
            "models": [s.model_id for s in specs],
            "methods": [sig.to_dict() for sig in signatures_from_spec(spec)],
            "chat": spec.chat,
            "backend": self.backend.name,
            "pool_size": self.settings.pool_size,
        }

    def start_helpers(self) -> None:
        """Start what the backend needs beside the runner: ``ollama serve`` when no Ollama
        answers on a loopback address."""
        if self.backend.name != "ollama" or self.ollama is not None:
            return  # (and a model folder's runner never imports the Ollama client)
        from edge_runner.backends.ollama import OllamaBackend

        if not isinstance(self.backend, OllamaBackend):
            return
        from edge_runner.backends.ollama_serve import ensure_ollama
        from edge_runner.config.paths import data_dir

        self.ollama = ensure_ollama(
            self.backend.host, verbose=self.config.verbose, log_dir=data_dir() / "ollama"
        )
        if self.ollama is not None and self.telemetry is not None:
            self.telemetry.watch_child("ollama", self.ollama.process.pid)

    async def serve(
        self,
        *,
        on_ready: Callable[[Runner], None] | None = None,
        notifier: Notifier | None = None,
        lifeline_fd: int | None = None,
        stop_signals: bool = False,
    ) -> None:
        """Run until stopped (:meth:`Runner.request_stop`, or SIGTERM/SIGINT with
        ``stop_signals``), then drain.

        Args:
            on_ready: called once the control plane has registered the runner.
            notifier: tell a service manager (systemd) about readiness and health.
            lifeline_fd: stop when the supervisor holding this pipe goes away.
            stop_signals: install stop handlers (the main thread of a process only).
        """
        from edge_runner.daemons.supervision import watch_lifeline
        from edge_runner.service.daemons import runner_notifications
        from edge_runner.service.notify import Notifier

        runner = self.runner
        if stop_signals:
            from edge_runner._platform import install_stop_handlers

            install_stop_handlers(asyncio.get_running_loop(), runner.request_stop)
        watch_lifeline(lifeline_fd, runner.request_stop)
        async with contextlib.AsyncExitStack() as stack:
            if self.logs is not None:
                from edge_runner.config.paths import runtime_dir
                from edge_runner.runner.local_api import LocalApi

                await stack.enter_async_context(LocalApi(runner, self.logs, runtime_dir()))
            await stack.enter_async_context(runner_notifications(notifier or Notifier(), runner))
            await runner.run(on_ready=on_ready)
        logger.debug("runner stopped")

    def close(self) -> None:
        """Stop an ``ollama serve`` the runner started and let go of its id."""
        if self.ollama is not None:
            self.ollama.stop()
            self.ollama = None
        if self.identity is not None:
            self.identity.release()
            self.identity = None


def build_runner(
    config: RunnerConfig,
    *,
    backend: Backend | None = None,
    sampler: Sampler | None = None,
    gpus: tuple[pb.Gpu, ...] | None = None,
    progress: StatusListener | None = None,
) -> RunnerDaemon:
    """The runner ``config`` describes, ready to :meth:`~RunnerDaemon.serve`.

    Resolves the control plane and token (arguments > environment > context), places the
    model on GPUs (before the backend is built: building it imports the model's code, which
    may initialise CUDA), builds the backend, claims the runner id kept for this source and
    trades a user token for a runner credential.

    Args:
        config: what to run.
        backend: serve this backend instead of building one for ``config.source`` (tests);
            no GPU placement then.
        sampler: the telemetry sampler to use instead of this machine's (tests: recorded
            NVML answers).
        gpus: register these GPUs instead of placing the model (tests).
        progress: called with every model status change (a terminal progress bar); without
            it, download and load progress go to the log.

    Raises:
        ConfigError: no control plane or token, plain text off loopback without
            ``insecure``, a missing API key variable.
        ModelFolderError: a bad model folder.
        PlacementError: no GPU here fits what the model folder asks for.
        Unauthorized, Forbidden: enrolment refused the token or the runner id.
    """
    from edge_runner.config.paths import data_dir, runtime_dir
    from edge_runner.config.resolve import Credentials, resolve_credentials

    scale = config.time_scale
    if config.api_base and config.token and config.context is None:
        creds = Credentials(config.api_base, config.token)  # given: no context is read
    else:
        creds = resolve_credentials(
            context=config.context, api_base=config.api_base, token=config.token
        )
    host = urlsplit(creds.api_base).hostname or ""
    if creds.api_base.startswith("http://") and not is_loopback(host):
        if not config.insecure:
            raise ConfigError(
                f"refusing plain text to {creds.api_base}: use an https:// control plane, or "
                "--insecure for a trusted network"
            )
        logger.warning("connecting in PLAIN TEXT to %s (--insecure)", creds.api_base)
    telemetry: RunnerTelemetry | None = None
    placed: tuple[pb.Gpu, ...] = gpus or ()
    if backend is None:
        from edge_runner.daemons.telemetry import RunnerTelemetry

        telemetry = RunnerTelemetry(data_dir())
        if gpus is None:
            placed = telemetry.place(config.source, config.gpus)
        sampler = sampler or telemetry.sampler
        backend = build_backend(
            config.source, probe_interval=5.0 * scale, log_progress=progress is None
        )
    if progress is not None:
        backend.add_status_listener(progress)
    pool_size = config.pool_size or backend.default_pool_size() or DEFAULT_POOL_SIZE
    identity = None
    try:
        runner_id = config.runner_id
        if runner_id is None:
            from edge_runner.runner.identity import claim_runner_id

            identity = claim_runner_id(
                creds.api_base, config.source.key(), data_dir(), runtime_dir()
            )
            runner_id = identity.runner_id
        ca_file = config.ca_file or (Path(creds.ca_file) if creds.ca_file else None)
        token = creds.token
        if config.enroll:
            from edge_runner.daemons.enroll import runner_credential

            token = runner_credential(creds.api_base, creds.token, runner_id, ca_file)
    except BaseException:
        if identity is not None:
            identity.release()
        raise
    settings = RunnerSettings(
        api_base=creds.api_base,
        token=token,
        pool_size=pool_size,
        grace_period=config.grace_period,
        backoff_initial=config.backoff_initial * scale,
        backoff_cap=config.backoff_cap * scale,
        transport=config.transport,
        tunnel_address=config.tunnel_address,
        ca_file=ca_file,
    )
    if telemetry is not None:
        telemetry.label(runner_id, [s.model_id for s in backend.specs()] or [config.source.key()])
    effective = dataclasses.replace(
        config, runner_id=runner_id, pool_size=pool_size, ca_file=ca_file
    )
    runner = Runner(settings, backend, runner_id, sampler=sampler, gpus=placed)
    return RunnerDaemon(effective, runner, identity=identity, telemetry=telemetry)
