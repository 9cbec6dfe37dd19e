"""What the checks share: the options, and facts read once (the contexts file, the credentials,
the control plane's answers), whichever check asks first.

Checks run in parallel threads, so each fact is computed under its own lock and remembered,
failures included: a broken contexts file is read (and reported) once, and three checks that
need ``/v2/info`` cause one request.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.resolve import (
    ENV_API_BASE,
    Credentials,
    ca_file_source,
    resolve_credentials,
)
from edge_runner.config.secrets import SecretStore, secret_store
from edge_runner.doctor._core import describe_error

__all__ = ["DEFAULT_PORTS", "Env", "Options", "Probe"]

#: the ports `edge-runner up` and `edge-runner control` listen on by default (HTTP, gRPC)
DEFAULT_PORTS = (7070, 7071)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Options:
    """What to check.

    Attributes:
        context: the context to check (default: ``$EDGE_RUNNER_CONTEXT``, else the current one).
        ports: local ports a control plane would listen on (HTTP API first, then gRPC).
        http_timeout: seconds for each network request a check makes.
        clock: this machine's clock (seconds since the epoch); tests shift it to fake a skew.
        runtime: the runtime dir to look for local runners in (default: the user's).
        secret_timeout: seconds each keyring call may take.
    """

    context: str | None = None
    ports: tuple[int, ...] = DEFAULT_PORTS
    http_timeout: float = 3.0
    clock: Callable[[], float] = field(default=time.time, compare=False)
    runtime: Path | None = None
    secret_timeout: float = 2.0


@dataclass(frozen=True)
class Probe:
    """What the control plane answered to ``GET /healthz`` and ``GET /v2/info``.

    Attributes:
        api_base: the address asked.
        error: why ``/healthz`` got no good answer ("" when it did).
        info: the ``/v2/info`` document, or None when it was not asked or refused.
        info_status: the HTTP status of ``/v2/info`` (0: not asked, no token).
        info_error: why ``/v2/info`` gave no document.
        sent: this machine's clock when the last request left.
        received: this machine's clock when its answer came.
        date: that answer's ``Date`` header, if any.
    """

    api_base: str
    error: str = ""
    info: dict[str, Any] | None = None
    info_status: int = 0
    info_error: str = ""
    sent: float = 0.0
    received: float = 0.0
    date: str | None = None

    @property
    def reachable(self) -> bool:
        """Whether ``/healthz`` answered 200."""
        return not self.error


class _Memo:
    """Compute each value once, under its own lock; a failure is remembered and raised again."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._values: dict[str, tuple[bool, Any]] = {}

    def get(self, key: str, fn: Callable[[], _T]) -> _T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                try:
                    self._values[key] = (True, fn())
                except Exception as exc:  # remembered, raised to every caller below
                    self._values[key] = (False, exc)
            ok, value = self._values[key]
        if ok:
            result: _T = value
            return result
        raise value


class Env:
    """The options and the shared facts of one doctor run."""

    def __init__(self, options: Options | None = None) -> None:
        """Check with ``options`` (defaults: the active context, this user's files)."""
        self.options = options or Options()
        self._memo = _Memo()

    def contexts(self) -> ContextsFile:
        """The contexts file.

        Raises:
            ConfigError: it cannot be read or parsed.
        """
        return self._memo.get("contexts", ContextsFile.load)

    def context(self) -> Context | None:
        """The context to check; None when there are no contexts at all.

        Raises:
            ConfigError: the contexts file is broken, or the selected context does not exist, or
                there are contexts but none is selected.
        """

        def find() -> Context | None:
            contexts = self.contexts()
            named = self.options.context or os.environ.get("EDGE_RUNNER_CONTEXT") or None
            if named is None and contexts.current is None and not contexts.contexts:
                return None
            return contexts.active(self.options.context)

        return self._memo.get("context", find)

    def store(self) -> SecretStore:
        """The secret store (keyring or files), as every other command picks it.

        Raises:
            ConfigError: ``EDGE_RUNNER_SECRET_BACKEND`` is wrong or a forced keyring is unusable.
        """
        return self._memo.get("store", lambda: secret_store(timeout=self.options.secret_timeout))

    def credentials(self) -> Credentials:
        """Address and token, resolved exactly as the CLI resolves them.

        Raises:
            ConfigError: something is missing; SecretStoreError: the store refused.
        """
        return self._memo.get(
            "credentials",
            lambda: resolve_credentials(context=self.options.context, store=self.store()),
        )

    def token(self) -> str | None:
        """The token the CLI would send, or None when there is none."""
        try:
            return self.credentials().token
        except Exception:  # the context check explains why; here "no token" is enough
            return None

    def api_base(self) -> str | None:
        """The control plane address the CLI would call, or None when none is configured."""
        try:
            return self.credentials().api_base.rstrip("/")
        except Exception:  # no token, perhaps: the address may still be known
            pass
        from_env = os.environ.get(ENV_API_BASE, "").strip()
        if from_env:
            return from_env.rstrip("/")
        try:
            ctx = self.context()
        except Exception:  # the context check reports it
            return None
        return ctx.api_base.rstrip("/") if ctx is not None else None

    def ca_file(self) -> tuple[str | None, str]:
        """The private CA to trust, and where that setting came from (for messages).

        Returns:
            ``(path, source)``; ``(None, "the system trust store")`` when none is set.
        """
        try:
            ctx = self.context()
        except Exception:  # the context check reports it
            ctx = None
        return ca_file_source(ctx)

    def http(self) -> httpx.Client:
        """An HTTP client for the control plane, trusting what the CLI would trust.

        Raises:
            OSError, ssl.SSLError: the ca_file cannot be read.
        """
        base = self.api_base() or ""
        ca, _ = self.ca_file()
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        return httpx.Client(
            base_url=base, verify=verify, timeout=httpx.Timeout(self.options.http_timeout)
        )

    def probe(self) -> Probe | None:
        """``/healthz``, then (with a token) ``/v2/info``; None when no address is configured."""
        return self._memo.get("probe", self._probe)

    def _probe(self) -> Probe | None:
        base = self.api_base()
        if base is None:
            return None
        clock = self.options.clock
        try:
            http = self.http()
        except (OSError, ssl.SSLError) as exc:
            return Probe(base, error=f"cannot load the CA file: {describe_error(exc)}")
        with http:
            sent = clock()
            try:
                health = http.get("/healthz")
            except httpx.HTTPError as exc:
                return Probe(base, error=describe_error(exc))
            received = clock()
            if health.status_code != 200:
                return Probe(base, error=f"GET /healthz answered HTTP {health.status_code}")
            date = health.headers.get("date")
            token = self.token()
            if token is None:
                return Probe(base, sent=sent, received=received, date=date)
            sent = clock()
            try:
                answer = http.get("/v2/info", headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                return Probe(base, info_error=describe_error(exc), sent=sent, date=date)
            received = clock()
            date = answer.headers.get("date", date)
            if answer.status_code != 200:
                return Probe(
                    base,
                    info_status=answer.status_code,
                    info_error=f"GET /v2/info answered HTTP {answer.status_code}",
                    sent=sent,
                    received=received,
                    date=date,
                )
            try:
                info = answer.json()
            except ValueError as exc:
                return Probe(base, info_status=200, info_error=f"not JSON: {describe_error(exc)}")
            if not isinstance(info, dict):
                return Probe(base, info_status=200, info_error="not a JSON object")
            return Probe(base, info=info, info_status=200, sent=sent, received=received, date=date)
