"""What the dashboard asks of a control plane: tasks, draining a runner, and runner logs.

- ``GET /v2/tasks?limit=100``: the user's queued and running tasks, then the most recent
  finished ones (model, method, status, queue wait, run time, tokens/s where known);
- ``POST /v2/runners/{id}/drain`` (scope ``manage``): the runner stops taking tasks and
  finishes those it has;
- ``GET /v2/runners/{id}/logs?limit=200&level=warning&grep=text``: the logs the runner sent
  over its tunnel; ``&follow=1`` streams new ones as Server-Sent Events (``event: log``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from edge_runner.control.http_common import JSON_OBJECT, SSE_HEADERS
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.errors import ApiProblem, ErrorCode
from edge_runner.views import LogRecordView, TaskView

__all__ = ["add_ops_routes"]

MAX_LIMIT = 1000
_KEEPALIVE_S = 15.0


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name, str(default))
    # isdigit() alone takes "²" (which int() refuses: a 500) and "٣" (which it reads as 3)
    if not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= MAX_LIMIT:
        raise ApiProblem(
            400, ErrorCode.INVALID_ARGUMENT, f"`{name}` must be 0-{MAX_LIMIT}", param=name
        )
    return int(raw)


def _level(request: Request) -> int:
    name = request.query_params.get("level", "")
    if not name:
        return 0
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ApiProblem(
            400,
            ErrorCode.INVALID_ARGUMENT,
            "`level` must be debug, info, warning or error",
            param="level",
        )
    return value


def _matches(record: LogRecordView, level: int, grep: str) -> bool:
    value = logging.getLevelName(str(record["level"]).upper())
    if isinstance(value, int) and value < level:
        return False
    return not grep or grep in f"{record['logger']} {record['message']}".lower()


def add_ops_routes(
    app: FastAPI, state: ControlState, principal: Callable[[Request, str | None], TokenInfo]
) -> None:
    """Register the routes above."""

    @app.get("/v2/tasks", response_model=JSON_OBJECT)
    async def list_tasks(request: Request) -> dict[str, list[TaskView]]:
        user = principal(request, "read").user_id
        limit = _int(request, "limit", 100)
        dispatcher = state.dispatcher
        live = [dispatcher.task_view(t) for t in dispatcher.tasks.values() if t.user_id == user]
        done = [r.to_dict() for r in reversed(dispatcher.recent) if r.user_id == user]
        return {"tasks": (live + done)[:limit]}

    @app.post("/v2/runners/{runner_id}/drain")
    async def drain(runner_id: str, request: Request) -> dict[str, str]:
        user = principal(request, "manage").user_id
        if not state.drain_runner(user, runner_id):
            raise ApiProblem(
                404, ErrorCode.UNKNOWN_RUNNER, f"no connected runner {runner_id!r} of yours"
            )
        return {"runner_id": runner_id, "status": "draining"}

    @app.get("/v2/runners/{runner_id}/logs")
    async def runner_logs(runner_id: str, request: Request) -> Response:
        user = principal(request, "read").user_id
        # The registry's record is the owner (runner ids are bound to the user who registered
        # them first), and only the owner's runner can have sent logs under that id.
        if state.registry.runner_owner(runner_id) != user:
            raise ApiProblem(404, ErrorCode.UNKNOWN_RUNNER, f"no runner {runner_id!r} of yours")
        limit = _int(request, "limit", 200)
        level = _level(request)
        grep = request.query_params.get("grep", "").lower()
        backlog = [r for r in state.logs.records(runner_id) if _matches(r, level, grep)]
        backlog = backlog[-limit:] if limit else []
        if request.query_params.get("follow") not in ("1", "true"):
            return Response(json.dumps({"records": backlog}), media_type="application/json")
        return StreamingResponse(
            _follow(state, runner_id, backlog, level, grep),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )


async def _follow(
    state: ControlState, runner_id: str, backlog: list[LogRecordView], level: int, grep: str
) -> AsyncIterator[bytes]:
    follower = state.logs.follow(runner_id)
    reported = 0
    try:
        for record in backlog:
            yield b"event: log\ndata: %s\n\n" % json.dumps(record).encode()
        while True:
            try:
                record = await asyncio.wait_for(follower.queue.get(), _KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if follower.dropped > reported:
                lost = json.dumps({"count": follower.dropped - reported}).encode()
                yield b"event: dropped\ndata: %s\n\n" % lost
                reported = follower.dropped
            if _matches(record, level, grep):
                yield b"event: log\ndata: %s\n\n" % json.dumps(record).encode()
    finally:
        state.logs.unfollow(follower)
