"""A stream-in method's call on the native route: an NDJSON request body in, Server-Sent Events out.

``POST /v2/models/{id}/{method}`` with ``Content-Type: application/x-ndjson`` (or
``application/jsonl``), chunked or not. Line 1 is a JSON object of the other keyword arguments
(``{}`` for none), then each line is one JSON value, an item of the input stream; blank lines
are ignored, and the end of the body is the end of the input. The answer is the stream-out
route's: ``chunk`` events, then ``done`` (with the counts of inputs and outputs) or ``error``.

The request body and the answer flow at once, so one coroutine is the only consumer of ASGI
``receive()`` (Starlette's streaming response would call it to watch for a disconnect and eat
body pieces): it takes the next piece only once the runner has room for the items before it
(input credit, protocol 1.3), so a model slower than its input holds the client back through
TCP. Meanwhile it tells the HTTP protocol that it holds the body back
(:class:`~.http_guard.BodyFlow`), so the body idle clock stands still, and learns from it that
the client left. Once the body ended it keeps listening for the disconnect, which cancels the
task. The answer starts with the task's first event, so what fails before that (a bad item,
no runner within the request deadline, the model's first error) has its HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from edge_runner.control.http_common import SSE_HEADERS, json_kind, parse_json, usage_json
from edge_runner.control.http_errors import TASK_ERROR_STATUS, error_body, problem_answer
from edge_runner.control.http_guard import BODY_FLOW, BodyFlow
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.control.stream_in import StreamInCall
from edge_runner.control.tasks import Task, TaskDone, TaskFailedEvent, TaskOutput
from edge_runner.errors import ApiProblem, ErrorCode, InvalidArgument
from edge_runner.models.signatures import MethodSignature
from edge_runner.views import JSONValue

__all__ = ["NDJSON_TYPES", "call_ndjson"]

logger = logging.getLogger(__name__)

#: the media types of an NDJSON request body
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl")

#: the status of each refusal of the body once the task exists (the others are task codes)
_BODY_STATUS: dict[str, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_BODY: 400,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.BODY_TIMEOUT: 408,
}

T = TypeVar("T")


class _ClientGone(Exception):  # noqa: N818 - a signal between our coroutines, not an error
    """The client disconnected."""


class _BadBody(Exception):  # noqa: N818 - carries a refusal to where it is answered
    """A line of the body that cannot be used."""

    def __init__(self, code: ErrorCode, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class _Lines:
    """An NDJSON body's lines, taking a piece from ``receive()`` only when asked for a line.

    Args:
        receive: the request's ASGI receive.
        max_line: the longest line accepted, in bytes.
        flow: the request's :class:`BodyFlow` (its ``gone`` ends a wait for the client).
    """

    def __init__(self, receive: Receive, max_line: int, flow: BodyFlow) -> None:
        self._receive = receive
        self._max_line = max_line
        self.flow = flow
        self._buffer = bytearray()
        self._start = 0  # where the next line starts in _buffer
        self._scanned = 0  # no line end in _buffer before this
        self.more = True  # body pieces are still to come
        self.number = 0  # the number of the last line taken (from 1, blank ones counted)

    async def next(self) -> bytes | None:
        """The next line that is not blank (without its line end), or None at the body's end.

        Raises:
            _ClientGone: the client disconnected.
            _BadBody: a line longer than the limit.
        """
        while True:
            end = self._buffer.find(b"\n", max(self._start, self._scanned))
            if end < 0:
                self._scanned = len(self._buffer)  # a long line is searched once, not per piece
                if not self.more and self._start < len(self._buffer):
                    end = len(self._buffer)  # the last line needs no line end
            if end >= 0:
                line = bytes(self._buffer[self._start : end])
                self._start = end + 1
                self.number += 1
                if len(line) > self._max_line:
                    raise self._too_long()
                if line.strip():
                    return line
                continue
            if not self.more:
                return None
            if len(self._buffer) - self._start > self._max_line:
                self.number += 1
                raise self._too_long()
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            if self.flow.stalled is not None:
                raise _BadBody(ErrorCode.BODY_TIMEOUT, self.flow.stalled)
            del self._buffer[: self._start]  # cheap: a bytearray drops its head in place
            self._scanned -= self._start
            self._start = 0
            self._buffer += message.get("body", b"")
            self.more = message.get("more_body", False)

    async def until_disconnect(self) -> None:
        """After the body's end: wait for the client to leave (or the answer to end)."""
        while (await self._receive())["type"] != "http.disconnect":
            pass

    def _too_long(self) -> _BadBody:
        return _BadBody(
            ErrorCode.BODY_TOO_LARGE,
            f"line {self.number} of the NDJSON body is over the {self._max_line}-byte limit "
            "per line (raise it with `edge-runner control --max-body-bytes`)",
        )


async def call_ndjson(
    state: ControlState,
    caller: TokenInfo,
    model_id: str,
    signature: MethodSignature,
    request: Request,
) -> Response:
    """Start a stream-in call from an NDJSON body's first line; the answer feeds it the rest.

    Refusals before the task exists are answered with their status (415 for a body that is
    not NDJSON, 400 for a bad first line, 429/501/503 from the dispatcher); each closes the
    connection when body is left unread.
    """
    call = StreamInCall(state, caller, model_id, signature)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in NDJSON_TYPES:
        return _refusal(
            ApiProblem(
                415,
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"{model_id}.{signature.name} takes an input stream ('{call.param.name}'): send "
                "the body as NDJSON with `Content-Type: application/x-ndjson`, line 1 a JSON "
                "object of the other arguments ({} for none), then one JSON "
                f"{call.item_type} per line (got "
                f"{'no Content-Type' if not media else 'Content-Type: ' + media}); or call "
                f"the WebSocket route /v2/models/{model_id}/{signature.name}/ws",
            ),
            close=True,
        )
    flow: BodyFlow = request.scope.get("extensions", {}).get(BODY_FLOW) or BodyFlow()
    lines = _Lines(request.receive, state.settings.max_body_bytes, flow)
    try:
        first = await lines.next()
        args = call.check_arguments(_arguments(first, lines.number))
        task = call.start(args)
    except _ClientGone:
        logger.debug("%s.%s: the client left before the first line", model_id, signature.name)
        return Response(status_code=400)  # nobody reads it
    except _BadBody as exc:
        status = _BODY_STATUS[exc.code]
        return _refusal(ApiProblem(status, exc.code, exc.message, param=exc.param), lines.more)
    except InvalidArgument as exc:
        problem = ApiProblem(400, ErrorCode.INVALID_ARGUMENT, str(exc), param=exc.argument)
        return _refusal(problem, lines.more)
    except ApiProblem as exc:
        return _refusal(exc, lines.more)
    return _NdjsonAnswer(call, task, lines)


def _arguments(line: bytes | None, number: int) -> JSONValue:
    """The start arguments from the first line (an empty body: none)."""
    if line is None:
        return {}
    try:
        value = parse_json(line)
    except ValueError as exc:
        raise _BadBody(
            ErrorCode.INVALID_JSON, f"line {number} of the NDJSON body is not valid JSON: {exc}"
        ) from exc
    if not isinstance(value, dict):
        raise _BadBody(
            ErrorCode.INVALID_BODY,
            f"line {number} of the NDJSON body must be a JSON object of the other keyword "
            f'arguments ({{}} for none, e.g. {{"prefix": ">"}}), got a JSON '
            f"{json_kind(value)}; the input items follow, one per line",
        )
    return value


def _refusal(problem: ApiProblem, close: bool) -> Response:
    """The JSON error answer; ``close``: body is left unread (it would keep coming)."""
    return problem_answer(problem, {"Connection": "close"} if close else None)


class _NdjsonAnswer(Response):
    """The answer to a started stream-in call: it feeds the body's items to the task while it
    sends the task's events (see the module docstring)."""

    def __init__(self, call: StreamInCall, task: Task, lines: _Lines) -> None:
        super().__init__()
        self.call = call
        self.task = task
        self.lines = lines
        lines.flow.answers_stall = True  # a body that stalls ends the stream with an error event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Feed and answer until the task's terminal event."""
        feeder = asyncio.ensure_future(self._feed())
        try:
            await self._answer(send)
        finally:
            if not feeder.done():
                feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder  # a bug in the feeder surfaces here (the gate logs it)

    async def _answer(self, send: Send) -> None:
        task = self.task
        started = False
        outputs = 0
        async with contextlib.aclosing(self.call.outputs()) as events:
            async for event in events:
                if isinstance(event, TaskOutput):
                    data = b'event: chunk\ndata: {"index":%d,"output":%s}\n\n' % (
                        outputs,
                        event.payload,
                    )
                    outputs += 1
                elif isinstance(event, TaskDone):
                    data = b'event: done\ndata: {"task_id":"%s","inputs":%d,"outputs":%d%s}\n\n' % (
                        task.task_id.encode(),
                        task.inputs,
                        outputs,
                        usage_json(event),
                    )
                else:
                    if not started:
                        await _send_failure(send, event, task.task_id)
                        return
                    payload = {"code": event.code, "message": event.message}
                    data = b"event: error\ndata: %s\n\n" % json.dumps(payload).encode()
                if not started:
                    await send(_start(task.task_id))
                    started = True
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _feed(self) -> None:
        """Send the body's items as the runner has room, then the end of input; a line that
        cannot be used, or a client that leaves, cancels the task (its answer says why)."""
        call, lines, task = self.call, self.lines, self.task
        dispatcher = call.state.dispatcher
        try:
            index = 0
            while (line := await lines.next()) is not None:
                payload = call.check_item(_item(line, lines.number), index)
                if dispatcher.input_room(task) > 0:
                    sent = await call.send(payload)  # room now: no wait to watch
                else:
                    sent = await self._until_gone(call.send(payload))
                if not sent:
                    return  # the task ended (its method returned, or it failed)
                index += 1
            await self._until_gone(call.end())
            await lines.until_disconnect()
            call.cancel("the client disconnected")  # no-op once the task ended
        except _ClientGone:
            call.cancel("the client disconnected")
        except _BadBody as exc:
            call.cancel(exc.message, exc.code)
        except InvalidArgument as exc:
            call.cancel(
                f"line {lines.number} of the NDJSON body: {exc}", ErrorCode.INVALID_ARGUMENT
            )
        except Exception:
            call.cancel(
                "the control plane failed reading the body (a bug)", ErrorCode.INTERNAL_ERROR
            )
            raise

    async def _until_gone(self, waiting: Awaitable[T]) -> T:
        """Await ``waiting`` (the runner's room, or the task reaching one) while the body is held
        back, which the body idle clock does not count; the client leaving ends it.

        Raises:
            _ClientGone: the client disconnected meanwhile.
        """
        flow = self.lines.flow
        work = asyncio.ensure_future(waiting)
        if work.done():
            return work.result()
        gone = asyncio.ensure_future(flow.gone.wait())
        flow.held = True
        try:
            await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            flow.held = False
            gone.cancel()
            if not work.done():
                work.cancel()
        if not work.done():
            raise _ClientGone
        return work.result()


def _item(line: bytes, number: int) -> JSONValue:
    try:
        return parse_json(line)
    except ValueError as exc:
        raise _BadBody(
            ErrorCode.INVALID_JSON, f"line {number} of the NDJSON body is not valid JSON: {exc}"
        ) from exc


def _start(task_id: str) -> Message:
    headers = {**SSE_HEADERS, "X-Task-Id": task_id, "Connection": "close"}
    raw = [(b"content-type", b"text/event-stream; charset=utf-8")]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http.response.start", "status": 200, "headers": raw}


async def _send_failure(send: Send, event: TaskFailedEvent, task_id: str) -> None:
    """A failure before the first event: its HTTP status and JSON error body."""
    status = TASK_ERROR_STATUS.get(event.code) or _BODY_STATUS.get(event.code, 500)
    body = error_body(event.code, event.message, status)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"x-task-id", task_id.encode()),
        (b"connection", b"close"),
    ]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
