"""The runner's local API: what the dashboard, ``edge-runner status|logs`` and MCP read.

One port on 127.0.0.1 (never another address), chosen by the OS and written with the pid to
``<runtime dir>/<runner id>.api.json``; every request needs ``Authorization: Bearer <secret>``,
the secret being a fresh random string in ``<runtime dir>/<runner id>.secret`` (mode 0600, dir
0700), so only the user who runs the runner can read it. Requests whose ``Host`` is not a
loopback name are refused too (DNS rebinding). Plain HTTP GETs:

- ``/ready``: 200 while registered with the control plane, else 503; JSON details either way;
- ``/metrics``: Prometheus text (tasks by status, in flight, queue wait and run time
  histograms, tunnel reconnects, GPU utilisation and memory);
- ``/v1/snapshot``: runner id, tunnel state, reconnects, last error, models, pool and busy
  slots, tasks in flight with their age, the latest telemetry sample;
- ``/v1/logs?limit=200&level=warning&grep=text``: recent log records;

and a WebSocket, ``/v1/events?topics=task,log,telemetry,status,model``: a ``snapshot`` first,
then ``{"topic": ..., "data": ...}`` as things happen. A client too slow for the stream loses
its oldest events (a ``dropped`` message says how many), never the runner's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edge_runner.config import write_private_file
from edge_runner.config.paths import ensure_private_dir, runner_file
from edge_runner.runner.events import EventHub, LogBuffer, level_number
from edge_runner.views import ReadyView, RunnerEvent

if TYPE_CHECKING:
    from edge_runner.runner.daemon import Runner

__all__ = ["TOPICS", "LocalApi"]

logger = logging.getLogger(__name__)

TOPICS = frozenset({"task", "log", "telemetry", "status", "model"})
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def _json(status: int, doc: object) -> Response:
    body = json.dumps(doc).encode()
    return _response(status, "application/json", body)


def _response(status: int, content_type: str, body: bytes) -> Response:
    # One request per connection: the server closes it after answering.
    headers = Headers(
        {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close"}
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


def _problem(status: int, message: str) -> Response:
    return _json(status, {"error": {"code": HTTPStatus(status).name, "message": message}})


class LocalApi:
    """Serves a :class:`Runner` on 127.0.0.1 while the ``async with`` block runs.

    Args:
        runner: the runner to show.
        logs: its log buffer.
        runtime: the user's runtime dir (its port and secret files go there).
        port: 0 picks a free port.
    """

    def __init__(self, runner: Runner, logs: LogBuffer, runtime: Path, *, port: int = 0) -> None:
        self.runner = runner
        self.logs = logs
        self.hub: EventHub = runner.hub
        self.runtime = runtime
        self.port = port
        self.secret = ""
        self._server: Server | None = None
        self.api_file = runner_file(runtime, runner.runner_id, "api.json")
        self.secret_file = runner_file(runtime, runner.runner_id, "secret")

    async def __aenter__(self) -> LocalApi:
        ensure_private_dir(self.runtime)
        self.secret = secrets.token_urlsafe(32)
        write_private_file(self.secret_file, self.secret.encode())
        self._server = await serve(
            self._stream,
            "127.0.0.1",
            self.port,
            process_request=self._http,
            server_header=None,
            max_size=64 * 1024,  # clients only send small requests
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        info = {
            "runner_id": self.runner.runner_id,
            "pid": os.getpid(),
            "url": f"http://127.0.0.1:{self.port}",
            "secret_file": str(self.secret_file),
        }
        write_private_file(self.api_file, json.dumps(info).encode())
        logger.debug("local API on 127.0.0.1:%d", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for path in (self.api_file, self.secret_file):
            with contextlib.suppress(OSError):
                path.unlink()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- HTTP -------------------------------------------------------------------------------

    def _refused(self, request: Request) -> Response | None:
        host = (request.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in _LOOPBACK_HOSTS:
            return _problem(403, f"the local API answers on 127.0.0.1 only, not {host!r}")
        given = request.headers.get("Authorization") or ""
        token = given.removeprefix("Bearer ").strip() if given.startswith("Bearer ") else ""
        if not token or not hmac.compare_digest(token.encode(), self.secret.encode()):
            return _problem(
                401,
                f"send Authorization: Bearer <the secret in {self.secret_file}> "
                "(readable by this runner's user only)",
            )
        return None

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        refused = self._refused(request)
        if refused is not None:
            return refused
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        runner = self.runner
        try:
            if url.path == "/v1/events":
                return None  # the WebSocket handshake goes on
            if url.path == "/ready":
                ready: ReadyView = {"ready": runner.ready, **runner.snapshot()["tunnel"]}
                return _json(200 if runner.ready else 503, ready)
            if url.path == "/metrics":
                body = runner.metrics_text().encode()
                return _response(200, "text/plain; version=0.0.4; charset=utf-8", body)
            if url.path == "/v1/snapshot":
                return _json(200, runner.snapshot())
            if url.path == "/v1/logs":
                limit = int(query.get("limit", "200"))
                level = level_number(query.get("level", "debug"))
                records = self.logs.records(limit=limit, level=level, grep=query.get("grep", ""))
                return _json(200, {"records": records})
        except ValueError as exc:  # a bad limit or level
            return _problem(400, str(exc))
        return _problem(404, f"no {url.path}; try /v1/snapshot, /v1/logs, /ready, /metrics")

    # -- the event stream -------------------------------------------------------------------

    async def _stream(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        asked = {t for part in query.get("topics", []) for t in part.split(",") if t}
        unknown = asked - TOPICS
        if unknown:
            await connection.close(1008, f"unknown topics: {', '.join(sorted(unknown))}")
            return
        sub = self.hub.subscribe(frozenset(asked or TOPICS))
        reported = 0
        reader = asyncio.ensure_future(_drain(connection))
        try:
            first: RunnerEvent = {"topic": "snapshot", "data": self.runner.snapshot()}
            await connection.send(json.dumps(first))
            while not reader.done():
                getter = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                if sub.dropped > reported:
                    lost: RunnerEvent = {
                        "topic": "dropped",
                        "data": {"count": sub.dropped - reported},
                    }
                    await connection.send(json.dumps(lost))
                    reported = sub.dropped
                event = getter.result()
                await connection.send(json.dumps({"topic": event.topic, "data": event.data}))
        except ConnectionClosed:
            pass
        finally:
            self.hub.unsubscribe(sub)
            reader.cancel()


async def _drain(connection: ServerConnection) -> None:
    """Read (and ignore) what the client sends, until it closes."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in connection:
            pass
