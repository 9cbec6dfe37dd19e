"""Pieces both HTTP APIs share: reading bodies, submitting tasks, waiting for their events."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import NoReturn

from starlette.requests import ClientDisconnect, Request
from starlette.responses import StreamingResponse
from starlette.types import Send

from edge_runner.control.http_errors import TASK_ERROR_STATUS
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import (
    Task,
    TaskDone,
    TaskEvent,
    TaskFailedEvent,
    TaskOutput,
    TaskState,
)
from edge_runner.errors import ApiProblem, ErrorCode, QueueFull, RunnerTooOld
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject, JSONValue

__all__ = [
    "JSON_OBJECT",
    "MAX_JSON_DEPTH",
    "SSE_HEADERS",
    "TaskStream",
    "answer",
    "answer_all",
    "first_event",
    "json_kind",
    "not_ready_problem",
    "parse_json",
    "read_body",
    "read_json",
    "read_json_object",
    "stream_events",
    "submit_batch",
    "submit_task",
    "task_problem",
    "usage_json",
    "wait_event",
]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: the deepest nesting of arrays and objects a request body may have
MAX_JSON_DEPTH = 64

logger = logging.getLogger(__name__)


async def read_body(request: Request, limit: int) -> bytes:
    """Read a body of at most ``limit`` bytes (413 beyond, without reading the rest).

    A client that hangs up halfway is an ApiProblem nobody receives, logged at DEBUG: it is
    not a failure of ours.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
        raise _too_large(int(length), limit)
    body = bytearray()
    try:
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise _too_large(len(body), limit)
    except ClientDisconnect as exc:
        logger.debug("%s %s: the client left mid-body", request.method, request.url.path)
        raise ApiProblem(
            400,
            ErrorCode.CLIENT_DISCONNECTED,
            "the connection closed before the whole body arrived",
        ) from exc
    return bytes(body)


#: The ``response_model`` of a route whose handler returns a view (a TypedDict of
#: :mod:`edge_runner.views`): FastAPI checks and writes it as the plain JSON object it is, as it
#: did before the views were typed (a TypedDict model would drop the keys it does not declare
#: and write the others in its own order).
JSON_OBJECT = dict[str, object]


def parse_json(raw: bytes) -> JSONValue:
    """Parse strict JSON (RFC 8259) of at most :data:`MAX_JSON_DEPTH` levels.

    ``NaN``, ``Infinity`` and numbers too large for a float (``1e400``) are refused: JSON has
    none of them, and they turn into values no later check expects.

    Raises:
        ValueError: with a message that says what is wrong.
    """
    try:
        # As json.loads decodes bytes, with one decoder built once (loads builds one per call).
        value: JSONValue = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError as exc:
        raise ValueError(
            f"arrays and objects are nested deeper than {MAX_JSON_DEPTH} levels"
        ) from exc
    # Cheap bound first: nesting N deep takes at least N brackets.
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"arrays and objects are nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value (JSON numbers are finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def _deeper_than(value: JSONValue, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` deep (no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


async def read_json(request: Request, limit: int) -> JSONValue:
    """Read a JSON body of at most ``limit`` bytes (an empty body is ``{}``)."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        return parse_json(body)
    except ValueError as exc:
        raise ApiProblem(
            400, ErrorCode.INVALID_JSON, f"the request body is not valid JSON: {exc}"
        ) from exc


def json_kind(value: JSONValue) -> str:
    """What JSON calls the type of ``value``: ``object``, ``array``, ``string``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "number"


async def read_json_object(request: Request, limit: int) -> JSONObject:
    """Read a JSON object body of at most ``limit`` bytes (an empty body is ``{}``)."""
    value = await read_json(request, limit)
    if not isinstance(value, dict):
        raise ApiProblem(
            400,
            ErrorCode.INVALID_BODY,
            "the request body must be a JSON object of keyword arguments, "
            f"got a JSON {json_kind(value)}",
        )
    return value


async def wait_event(state: ControlState, task: Task, deadline_s: float) -> TaskEvent:
    """Wait for the task's next event, turning a missed deadline into 503 or 504."""
    try:
        async with asyncio.timeout(deadline_s):
            return await task.events.get()
    except TimeoutError as exc:
        never_ran = task.state is TaskState.QUEUED
        state.dispatcher.cancel(task, "deadline exceeded")
        waiting = state.dispatcher.not_ready(task.user_id, task.model_id) if never_ran else None
        if waiting is not None:
            raise not_ready_problem(task.model_id, waiting) from exc
        if never_ran and state.dispatcher.online(task.user_id, task.model_id) == 0:
            raise ApiProblem(
                503,
                ErrorCode.NO_RUNNER,
                f"no runner is serving model {task.model_id!r} (waited {deadline_s:g} s); "
                "start one with `edge-runner runner PATH`",
                retry_after=5,
            ) from exc
        raise ApiProblem(
            504,
            ErrorCode.DEADLINE_EXCEEDED,
            f"model {task.model_id!r} did not answer within {deadline_s:g} s; "
            "the task was cancelled",
        ) from exc


async def answer(state: ControlState, task: Task, request: Request) -> TaskEvent:
    """Wait for a unary task's outcome; a client that hangs up meanwhile cancels the task."""
    watcher = asyncio.ensure_future(_cancel_on_disconnect(state, (task,), request))
    try:
        return await first_event(state, task)
    finally:
        watcher.cancel()


async def answer_all(
    state: ControlState, tasks: Sequence[Task], request: Request
) -> list[TaskEvent | ApiProblem]:
    """Wait for unary tasks' outcomes together (a batch), in their order; a task that failed
    has its error in its place. A client that hangs up meanwhile cancels all of them."""
    watcher = asyncio.ensure_future(_cancel_on_disconnect(state, tasks, request))
    try:
        return await asyncio.gather(*(_outcome(state, task) for task in tasks))
    finally:
        watcher.cancel()


async def _outcome(state: ControlState, task: Task) -> TaskEvent | ApiProblem:
    try:
        return await first_event(state, task)
    except ApiProblem as exc:
        return exc


async def _cancel_on_disconnect(
    state: ControlState, tasks: Sequence[Task], request: Request
) -> None:
    # The body has been read, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    for task in tasks:
        state.dispatcher.cancel(task, "the client disconnected")


async def first_event(state: ControlState, task: Task) -> TaskEvent:
    """Wait for a task's first event (a unary task's only one); a failure is an ApiProblem.

    Streams wait for their first event before answering so early failures get a proper
    status code instead of a 200 with an error event.
    """
    event: TaskEvent | None = None
    try:
        event = await wait_event(state, task, state.settings.request_timeout)
    except ApiProblem as exc:
        exc.task_id = task.task_id
        raise
    finally:
        if event is None and not task.finished:  # the client went away while we waited
            state.dispatcher.cancel(task, "the client went away")
    if isinstance(event, TaskFailedEvent):
        raise task_problem(event, task.task_id)
    return event


async def stream_events(
    state: ControlState, task: Task, first: TaskEvent
) -> AsyncGenerator[TaskEvent, None]:
    """Yield a task's events until its terminal one; cancels the task if abandoned.

    Each chunk handed on counts as read by the client (the response sends it before asking
    for the next), which extends the stream's credit. The model gets
    ``stream_idle_timeout`` between chunks, and the whole stream ``max_stream_duration`` from
    the request; past either the task is cancelled and the stream ends with an error event.
    """
    settings = state.settings
    dispatcher = state.dispatcher
    try:
        event = first
        while True:
            yield event
            if not isinstance(event, TaskOutput):
                return
            dispatcher.stream_consumed(task)
            left = settings.max_stream_duration - (time.monotonic() - task.created)
            try:
                async with asyncio.timeout(max(0.0, min(settings.stream_idle_timeout, left))):
                    event = await task.events.get()
            except TimeoutError:
                if left <= settings.stream_idle_timeout:
                    why = (
                        f"the stream reached its maximum duration of "
                        f"{settings.max_stream_duration:g} s (the control plane's "
                        "--max-stream-duration)"
                    )
                else:
                    why = (
                        f"model {task.model_id!r} sent nothing for "
                        f"{settings.stream_idle_timeout:g} s (the control plane's "
                        "--stream-idle-timeout)"
                    )
                message = f"{why}; the task was cancelled"
                dispatcher.cancel(task, message, ErrorCode.DEADLINE_EXCEEDED)
                yield TaskFailedEvent(ErrorCode.DEADLINE_EXCEEDED, message)
                return
    finally:
        if not task.finished:
            dispatcher.cancel(task, "client went away")


class TaskStream(StreamingResponse):
    """A task's Server-Sent Events; when the client goes away its events stop at once.

    Starlette cancels the sending of a streaming response when the client disconnects, which
    can leave our event generator suspended mid-``yield`` until the garbage collector finalises
    it; closing it here cancels the task (and frees its runner slot) right away.
    """

    def __init__(self, content: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={**headers, **SSE_HEADERS}
        )
        self._events = content

    async def stream_response(self, send: Send) -> None:
        """Send the stream; close the event generator however sending ends."""
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()


def not_ready_problem(model_id: str, status: pb.ModelStatus) -> ApiProblem:
    """503 for a model that its runners are still loading, or that is unavailable for now."""
    eta = math.ceil(status.eta_ms / 1000) if status.eta_ms else 0
    if status.state == pb.LOADING:
        message = status.message or f"{model_id} is loading"
        if eta:
            message += f"; ready in about {eta} s"
        retry_after = min(max(eta, 1), 30) if eta else 5
        return ApiProblem(503, ErrorCode.MODEL_LOADING, message, retry_after=retry_after)
    message = status.message or f"{model_id} is unavailable on its runner for now"
    return ApiProblem(503, ErrorCode.MODEL_UNAVAILABLE, message, retry_after=5)


def submit_task(state: ControlState, task: Task) -> None:
    """Queue a task, or answer at once: 503 while its model is loading, 429 when full."""
    waiting = state.dispatcher.not_ready(task.user_id, task.model_id)
    if waiting is not None:
        state.dispatcher.count_rejected(task.user_id, task.model_id)
        raise not_ready_problem(task.model_id, waiting)
    try:
        state.dispatcher.submit(task)
    except QueueFull as exc:
        state.dispatcher.count_rejected(task.user_id, task.model_id)
        raise ApiProblem(
            429, ErrorCode.QUEUE_FULL, f"{exc}; retry in a moment", retry_after=1
        ) from exc
    except RunnerTooOld as exc:
        state.dispatcher.count_rejected(task.user_id, task.model_id)
        raise ApiProblem(501, ErrorCode.RUNNER_TOO_OLD, str(exc)) from exc


def submit_batch(state: ControlState, tasks: list[Task]) -> None:
    """Queue a batch's tasks, all or none: 503 while the model loads, 429 when the queue has
    no room for the ones that would wait (each is a request, as if sent one by one)."""
    if not tasks:
        return
    first = tasks[0]
    waiting = state.dispatcher.not_ready(first.user_id, first.model_id)
    try:
        if waiting is not None:
            raise not_ready_problem(first.model_id, waiting)
        try:
            state.dispatcher.submit_batch(tasks)
        except QueueFull as exc:
            raise ApiProblem(
                429,
                ErrorCode.QUEUE_FULL,
                f"{exc}; retry in a moment, or send smaller batches",
                retry_after=1,
            ) from exc
    except ApiProblem:
        for _ in tasks:
            state.dispatcher.count_rejected(first.user_id, first.model_id)
        raise


def task_problem(event: TaskFailedEvent, task_id: str | None = None) -> ApiProblem:
    """The HTTP error for a task that failed on the runner (or was cancelled, or lost)."""
    status = TASK_ERROR_STATUS.get(event.code, 500)
    return ApiProblem(
        status,
        event.code,
        event.message,
        retry_after=5 if status == 503 else None,
        task_id=task_id,
    )


def _too_large(size: int, limit: int) -> ApiProblem:
    return ApiProblem(
        413,
        ErrorCode.BODY_TOO_LARGE,
        f"the request body has {size} bytes, over the {limit}-byte limit "
        "(raise it with `edge-runner control --max-body-bytes`)",
    )


def usage_json(event: TaskDone) -> bytes:
    """``,"usage":{...}`` for a done task that counted tokens, else nothing."""
    if event.usage is None:
        return b""
    return b',"usage":{"prompt_tokens":%d,"completion_tokens":%d}' % (
        event.usage.prompt_tokens,
        event.usage.completion_tokens,
    )
