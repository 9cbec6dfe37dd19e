"""Finding the runners on this machine and reading their local API (see
:mod:`edge_runner.runner.local_api`). The CLI's ``status`` and ``logs``, the dashboard and MCP
use it; it imports neither the runner nor a server stack.

    from edge_runner.local_client import LocalClient
    with LocalClient.find() as runner:            # the only one, or find(runner_id=...)
        print(runner.snapshot()["tunnel"]["state"])
        for event in runner.events({"log"}):      # blocks; RunnerEvent views
            ...
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edge_runner._http import map_httpx_errors
from edge_runner._platform import try_lock, unlock
from edge_runner.config.paths import runner_file, runtime_dir
from edge_runner.errors import ClientError, ConnectionFailed
from edge_runner.views import LogRecordView, ReadyView, RunnerEvent, RunnerSnapshot

__all__ = ["LocalClient", "LocalRunner", "NoLocalRunner", "local_runners"]


class NoLocalRunner(ClientError):
    """No runner (or no runner with the asked id) runs on this machine for this user."""


@dataclass(frozen=True)
class LocalRunner:
    """A running runner's local API, as its files in the runtime dir describe it."""

    runner_id: str
    pid: int
    url: str
    secret_file: Path


def _alive(runtime: Path, runner_id: str) -> bool:
    """Whether the runner still holds its lock (a SIGKILLed one leaves its files behind)."""
    try:
        with runner_file(runtime, runner_id, "lock").open("a") as lock:
            if not try_lock(lock):
                return True
            unlock(lock)
            return False
    except OSError:
        return False


def local_runners(runtime: Path | None = None) -> list[LocalRunner]:
    """The runners running on this machine under this user, by id."""
    runtime = runtime or runtime_dir()
    found = []
    for path in sorted(runtime.glob("*.api.json")):
        try:
            info = json.loads(path.read_text())
            entry = LocalRunner(
                str(info["runner_id"]),
                int(info["pid"]),
                str(info["url"]),
                Path(info["secret_file"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written or foreign: not a runner we can talk to
        if _alive(runtime, entry.runner_id):
            found.append(entry)
    return found


class LocalClient:
    """A blocking client of one runner's local API."""

    def __init__(self, runner: LocalRunner, *, timeout: float = 10.0) -> None:
        self.runner = runner
        try:
            self._secret = runner.secret_file.read_text().strip()
        except OSError as exc:
            raise NoLocalRunner(
                f"cannot read {runner.secret_file} ({exc.strerror}); run this as the user who "
                "runs the runner"
            ) from exc
        self._http = httpx.Client(
            base_url=runner.url,
            headers={"Authorization": f"Bearer {self._secret}"},
            timeout=timeout,
            # The local API answers one request per connection (it is a WebSocket server).
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    @classmethod
    def find(cls, runner_id: str | None = None, runtime: Path | None = None) -> LocalClient:
        """The client of the only local runner, or of ``runner_id``.

        Raises:
            NoLocalRunner: none runs, the id is unknown, or several run and none was named.
        """
        runners = local_runners(runtime)
        if runner_id is not None:
            runners = [r for r in runners if r.runner_id == runner_id]
            if not runners:
                known = ", ".join(r.runner_id for r in local_runners(runtime)) or "none"
                raise NoLocalRunner(f"no local runner {runner_id!r}; running here: {known}")
        if not runners:
            raise NoLocalRunner(
                "no runner runs on this machine (start one with `edge-runner up` or "
                "`edge-runner runner PATH`)"
            )
        if len(runners) > 1:
            ids = ", ".join(r.runner_id for r in runners)
            raise NoLocalRunner(f"several runners run here ({ids}); pick one with --runner ID")
        return cls(runners[0])

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _get(self, path: str, **params: str | int | None) -> httpx.Response:
        with map_httpx_errors(self._unreachable):
            return self._http.get(path, params={k: v for k, v in params.items() if v is not None})

    def _unreachable(self, exc: httpx.HTTPError) -> ConnectionFailed:
        """What an httpx error means here: the runner's local API does not answer."""
        return ConnectionFailed(
            f"runner {self.runner.runner_id} (pid {self.runner.pid}) does not answer at "
            f"{self.runner.url}: {exc}"
        )

    def _json(self, path: str, **params: str | int | None) -> Any:
        # The answer's JSON as decoded, unchecked: each caller says which view it is.
        response = self._get(path, **params)
        if response.status_code >= 400 and path != "/ready":
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise ClientError(f"the runner's local API said {response.status_code}: {message}")
        return response.json()

    def snapshot(self) -> RunnerSnapshot:
        """The runner's state now."""
        return self._json("/v1/snapshot")

    def ready(self) -> ReadyView:
        """``{"ready": bool, ...}`` (the runner answers 503 while not ready)."""
        return self._json("/ready")

    def metrics(self) -> str:
        """The Prometheus text."""
        return self._get("/metrics").text

    def logs(
        self, *, limit: int = 200, level: str | None = None, grep: str | None = None
    ) -> list[LogRecordView]:
        """Recent log records, oldest first."""
        return list(self._json("/v1/logs", limit=limit, level=level, grep=grep)["records"])

    def events(self, topics: set[str] | None = None) -> Iterator[RunnerEvent]:
        """The event stream: ``{"topic", "data"}`` dicts, a ``snapshot`` first; blocks."""
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        query = f"?topics={','.join(sorted(topics))}" if topics else ""
        url = self.runner.url.replace("http://", "ws://", 1) + f"/v1/events{query}"
        try:
            with connect(url, additional_headers={"Authorization": f"Bearer {self._secret}"}) as ws:
                for message in ws:
                    yield json.loads(message)
        except (OSError, WebSocketException) as exc:
            with contextlib.suppress(Exception):
                self.close()
            raise ConnectionFailed(
                f"the event stream of runner {self.runner.runner_id} ended: {exc}"
            ) from exc
