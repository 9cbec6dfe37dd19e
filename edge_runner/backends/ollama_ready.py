"""The Ollama backend's readiness: where Ollama is, pulling and loading its models, watching it.

One thread per backend (a :class:`~edge_runner.backends.watch.Watcher`) prepares the models and
then watches Ollama. A model Ollama lacks is pulled, with progress (LOADING, "llama3.2 is
downloading: 42 %"); each model is then loaded into memory (LOADING) and becomes READY. A pull
that fails leaves the model FAILED (withdrawn; the message lists the local models and how to
pull). When Ollama stops answering — a probe every ``probe_interval`` s, or a call that could not
reach it — every model becomes UNAVAILABLE; when it answers again they are prepared again.

:func:`pull_model` is the one pull: the backend's, and ``edge-runner mcp``'s ``pull_model`` tool.
The method translation (tasks to Ollama calls) is :mod:`edge_runner.backends.ollama`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import httpx
import ollama
import pydantic

from edge_runner._http import describe_http_error
from edge_runner.backends.base import CancelEvent
from edge_runner.backends.http_cancel import PerThread, cancel_scope
from edge_runner.backends.watch import Watcher
from edge_runner.errors import BackendUnreachable, ConfigError, PullFailed
from edge_runner.proto import tunnel_pb2 as pb

__all__ = [
    "DEFAULT_HOST",
    "FOREIGN",
    "INSTALL_HINT",
    "OllamaReadiness",
    "PullStep",
    "describe",
    "model_id_for",
    "normalize_host",
    "ollama_parallel",
    "pull_model",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
INSTALL_HINT = (
    "install Ollama from https://ollama.com/download and start it with `ollama serve`, or point "
    "--ollama-host / OLLAMA_HOST at a running one"
)

#: errors of the ollama client and the HTTP stack under it, and of answers it cannot read:
#: the Ollama backend translates these (here while preparing, in .ollama for calls)
FOREIGN = (
    ollama.ResponseError,
    ollama.RequestError,
    httpx.HTTPError,
    ConnectionError,
    pydantic.ValidationError,
    ValueError,
)

#: ``Backend.set_status``: (model id, state, message, progress=..., eta_s=...)
SetStatus = Callable[..., None]


def model_id_for(name: str) -> str:
    """Ollama names may contain ``/``; model ids may not (``a/b`` → ``a--b``)."""
    return name.replace("/", "--")


def normalize_host(host: str | None) -> str:
    """An Ollama address as a URL: ``host``, ``host:port``, ``:port`` or a URL (port 11434)."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_HOST
    scheme, sep, rest = host.partition("://")
    if sep:
        return host  # a URL keeps its scheme's default port, as the ollama client has it
    hostport = host.split("/", 1)[0]
    if hostport.startswith(":"):
        host = f"127.0.0.1{host}"
    elif ":" not in hostport.rsplit("]", 1)[-1]:
        host = host.replace(hostport, f"{hostport}:11434", 1)
    return f"http://{host}"


def ollama_parallel() -> int:
    """How many requests per model Ollama runs at once: ``OLLAMA_NUM_PARALLEL``, else 1."""
    raw = os.environ.get("OLLAMA_NUM_PARALLEL", "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"OLLAMA_NUM_PARALLEL={raw!r} is not a positive integer")
    return int(raw)


def describe(exc: BaseException) -> str:
    """What went wrong talking to Ollama, in a few words for a message."""
    if isinstance(exc, ollama.ResponseError):
        return f"Ollama said: {exc.error}"
    text = str(exc)
    if isinstance(exc, ConnectionError) and "Failed to connect to Ollama" in text:
        return "connection refused"
    return describe_http_error(exc)


@dataclass(frozen=True, slots=True)
class PullStep:
    """One progress line of a pull.

    Attributes:
        done: bytes downloaded so far, over the layers announced so far.
        total: bytes of those layers (0 before the first one is announced).
        status: Ollama's phase (``pulling manifest``, ``pulling 6a0746a1ec1a``, ``success``).
    """

    done: int
    total: int
    status: str


def pull_model(client: ollama.Client, name: str) -> Iterator[PullStep]:
    """Pull ``name`` into the Ollama behind ``client``, yielding progress as it comes.

    Raises:
        PullFailed: Ollama answered with an error (unknown name, disk full, no network).
        BackendUnreachable: Ollama could not be reached, or broke off.
    """
    layers: dict[str, tuple[int, int]] = {}
    try:
        for part in client.pull(name, stream=True):
            if part.digest and part.total:
                layers[part.digest] = (int(part.completed or 0), int(part.total))
            done = sum(c for c, _ in layers.values())
            total = sum(t for _, t in layers.values())
            yield PullStep(done, total, part.status or "")
    except ollama.ResponseError as exc:
        raise PullFailed(name, exc.error) from exc
    except (httpx.HTTPError, ConnectionError) as exc:
        raise BackendUnreachable(describe(exc)) from exc


class OllamaReadiness:
    """Gets the models of one Ollama ready, then keeps their statuses true while it runs.

    Args:
        host: Ollama's address, normalized.
        names: model id to Ollama name.
        clients: the backend's per-thread ollama clients.
        set_status: the backend's :meth:`~edge_runner.backends.base.Backend.set_status`.
        num_ctx: the context length to load each model with.
        keep_alive: how long Ollama keeps a model loaded after a request.
        preload: load each model into memory before it is READY.
        probe_interval: seconds between liveness probes.
        log_progress: log download progress every 10 %.

    Attributes:
        failed: ids of the models whose pull failed for good (withdrawn).
    """

    def __init__(
        self,
        host: str,
        names: Mapping[str, str],
        clients: PerThread[ollama.Client],
        set_status: SetStatus,
        *,
        num_ctx: int | None,
        keep_alive: str | None,
        preload: bool,
        probe_interval: float,
        log_progress: bool,
    ) -> None:
        self.host = host
        self.names = names
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self.preload = preload
        self.log_progress = log_progress
        self.failed: set[str] = set()
        self._clients = clients
        self._set_status = set_status
        self._probe_http = httpx.Client(base_url=host, timeout=2.0)
        self._closed = CancelEvent()  # also aborts a pull or a load in progress
        self._watcher = Watcher(
            f"Ollama at {host}",
            probe_interval,
            prepare=self._prepare,
            probe=self._probe,
            went_down=self._went_down,
        )

    def start(self) -> None:
        """Check Ollama answers, then prepare the models in the background.

        Raises:
            ConfigError: no Ollama answers at ``host``.
        """
        try:
            version = self._probe_http.get("/api/version").json().get("version", "?")
            present = self._local_models()
        except FOREIGN as exc:
            raise ConfigError(
                f"no Ollama answers at {self.host} ({describe(exc)}); {INSTALL_HINT}"
            ) from exc
        logger.info("Ollama %s at %s has %d model(s)", version, self.host, len(present))
        for model_id, name in self.names.items():
            if _resolve(name, present) is None:
                self._set_status(model_id, pb.LOADING, f"{name} is waiting to be downloaded")
            elif self.preload:
                self._set_status(model_id, pb.LOADING, f"{name} is loading into memory")
        self._watcher.start()

    def lost(self) -> None:
        """A call could not reach Ollama: let the watcher confirm and mark the models."""
        self._watcher.wake()

    def close(self) -> None:
        """Stop the watcher (aborting a pull in progress) and close the probe's connection."""
        self._closed.set()
        self._watcher.stop()
        self._probe_http.close()

    # -- the watcher's thread ---------------------------------------------------------------

    def _prepare(self) -> None:
        """Pull what is missing, load, mark READY; stops at the first sign Ollama is down."""
        for model_id, name in self.names.items():
            if self._closed.is_set() or model_id in self.failed:
                continue
            try:
                with cancel_scope(self._closed):
                    present = self._local_models()
                    resolved = _resolve(name, present)
                    if resolved is None:
                        self._pull(model_id, name)
                        resolved = name
                    if self.preload:
                        self._load_into_memory(model_id, name, resolved)
            except PullFailed as exc:
                self.failed.add(model_id)
                message = self._pull_failure(exc.name, exc.error)
                logger.error("%s", message)
                self._set_status(model_id, pb.FAILED, message)
                continue
            except BackendUnreachable as exc:
                if not self._closed.is_set():
                    self._watcher.down(str(exc))
                return
            except FOREIGN as exc:
                if not self._closed.is_set():
                    self._watcher.down(describe(exc))
                return
            self._set_status(model_id, pb.READY, f"{name} is ready")
            logger.info("%s is ready", name)

    def _probe(self) -> None:
        self._probe_http.get("/api/version").raise_for_status()

    def _went_down(self, reason: str) -> None:
        for model_id, name in self.names.items():
            if model_id not in self.failed:
                self._set_status(
                    model_id,
                    pb.UNAVAILABLE,
                    f"{name} is unavailable: Ollama at {self.host} is not answering ({reason}); "
                    f"the runner checks again every {self._watcher.interval:g} s",
                )

    def _local_models(self) -> set[str]:
        return {m.model for m in self._clients.get().list().models if m.model}

    def _pull(self, model_id: str, name: str) -> None:
        logger.info("pulling %s from Ollama's registry", name)
        progress = _PullProgress(name)
        started = time.monotonic()
        for step in pull_model(self._clients.get(), name):
            update = progress.feed(step)
            if update is None:
                continue
            fraction, message, eta = update
            self._set_status(model_id, pb.LOADING, message, progress=fraction, eta_s=eta)
            if self.log_progress and progress.crossed_tenth():
                logger.info("%s", message)
        logger.info("%s pulled in %.1f s", name, time.monotonic() - started)

    def _pull_failure(self, name: str, error: str) -> str:
        try:
            local = sorted(self._local_models())
        except FOREIGN:
            local = []
        known = ", ".join(local) or "none"
        if "does not exist" in error or "not found" in error:
            return (
                f"Ollama's registry has no model {name!r} ({error}); models on this Ollama: "
                f"{known}. Pick one of those, or find a name at https://ollama.com/library and "
                f"pull it with `ollama pull NAME`"
            )
        return (
            f"pulling {name} failed: {error}; nothing was registered for it. Fix the cause (disk "
            f"space, network) and start the runner again, or run `ollama pull {name}` yourself "
            f"(models on this Ollama: {known})"
        )

    def _load_into_memory(self, model_id: str, name: str, resolved: str) -> None:
        loaded = {m.model for m in self._clients.get().ps().models}
        if resolved in loaded or f"{resolved}:latest" in loaded:
            return
        self._set_status(model_id, pb.LOADING, f"{name} is loading into memory")
        started = time.monotonic()
        options = {"num_ctx": self.num_ctx} if self.num_ctx else None
        try:
            self._clients.get().generate(model=name, keep_alive=self.keep_alive, options=options)
        except ollama.ResponseError as exc:
            # An embedding model cannot generate; a model too big for memory says so here. Either
            # way requests will carry Ollama's own message.
            logger.warning("loading %s into memory failed: %s", name, exc.error)
            return
        logger.info("%s loaded into memory in %.1f s", name, time.monotonic() - started)


class _PullProgress:
    """Turns pull steps into (fraction, message, eta seconds) for a model's LOADING status."""

    #: besides every whole percent, refresh the rate and ETA this often
    _EVERY_S = 1.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.last_sent = 0.0
        self.last_status = ""
        self.last_tenth = -1
        self.last_percent = -1
        self.fraction = 0.0

    def feed(self, step: PullStep) -> tuple[float, str, float] | None:
        """Digest one step; return an update at each whole percent, new phase or second."""
        done, total, status = step.done, step.total, step.status
        self.fraction = min(1.0, done / total) if total else 0.0
        now = time.monotonic()
        new_phase = not status.startswith("pulling ") and status != self.last_status
        self.last_status = status
        percent = int(self.fraction * 100)
        if not new_phase and percent == self.last_percent and now - self.last_sent < self._EVERY_S:
            return None
        self.last_sent, self.last_percent = now, percent
        elapsed = max(now - self.started, 1e-3)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 and total else 0.0
        if status.startswith("pulling ") or not status:
            detail = f" ({_size(done)} of {_size(total)}, {_size(rate)}/s)" if total else ""
            message = f"{self.name} is downloading: {percent} %{detail}"
        else:
            message = f"{self.name} is downloading: {status}"
        return self.fraction, message, eta

    def crossed_tenth(self) -> bool:
        """Whether progress passed another 10 % since the last time this said so."""
        tenth = int(self.fraction * 10)
        if tenth > self.last_tenth:
            self.last_tenth = tenth
            return True
        return False


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


def _resolve(name: str, present: set[str]) -> str | None:
    """The local name of ``name`` (``llama3.2`` is ``llama3.2:latest``), if Ollama has it."""
    for candidate in (name, f"{name}:latest"):
        if candidate in present:
            return candidate
    return None
