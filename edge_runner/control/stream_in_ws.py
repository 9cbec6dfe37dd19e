"""The WebSocket route of stream-in methods: ``/v2/models/{model_id}/{method}/ws``.

A stream-in method (``def s(self, items: Iterator[str], prefix: str = "") -> Iterator[str]``)
is called over one WebSocket: its other arguments once, then one message per input item, and
its outputs come back as messages while the input still flows. Every message is a text
message holding one JSON object with a ``type``.

Authentication: ``Authorization: Bearer <token>`` on the upgrade request (an invalid one is
refused before the upgrade, HTTP 403). A browser cannot set that header, so without one the
first message must be a ``start`` carrying ``"token"``. The token needs the ``predict`` scope.

Client to server::

    {"type": "start", "args": {"prefix": "> "}, "token": "..."}   optional; first if sent
    {"type": "input", "data": <item>}                              one per input item
    {"type": "end"}                                                the input is complete
    {"type": "cancel"}                                             stop the task

``args`` are the keyword arguments other than the stream (defaults fill the rest); without a
``start`` the first message is already an input (or ``end``) and the arguments are the
defaults. The task starts at the first message. Each item is checked against the stream's
element type. Closing the socket cancels the task, as ``cancel`` does.

Server to client::

    {"type": "started", "task_id": "..."}                          the task was created
    {"type": "output", "index": 0, "data": <item>}                 one per output, from 0
    {"type": "done", "task_id": "...", "inputs": 3, "outputs": 3}  (+ "usage" when counted)
    {"type": "error", "code": "...", "message": "...", "task_id": "..."}

``done`` and ``error`` are the last message; the server then closes with 1000, except after an
error the client caused: 1008 for ``UNAUTHENTICATED`` and ``MISSING_SCOPE``, 1007 for a
message that is not usable (``INVALID_JSON``, ``INVALID_BODY``, ``INVALID_ARGUMENT``), 1009 for
one over the control plane's ``--max-body-bytes`` (``BODY_TOO_LARGE``). An error names the
task once there is one.

Flow control: the next client message is read only when the runner has granted input credit
for the item before it (protocol 1.3), so a model slower than its input holds the client back
through TCP (uvicorn's WebSocket protocol stops reading the socket while a message waits for
the app). Outputs are sent as they come, each counted as read once sent, so a client that
reads nothing pauses the model as a stream-out reader does. One message is at most
``--max-body-bytes`` (and at most what fits in one tunnel frame, 64 MiB); the stream as a whole
has no size cap. While the server waits for the
client's next item, a pause longer than ``--body-idle-timeout`` fails the call
(``BODY_TIMEOUT``); after ``end`` the model's own stream limits apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from edge_runner.control.http_common import parse_json
from edge_runner.control.http_gate import TOKEN_KEY
from edge_runner.control.stream_in import StreamInCall
from edge_runner.control.tasks import TaskDone, TaskFailedEvent, TaskOutput
from edge_runner.errors import ApiProblem, ErrorCode, InvalidArgument
from edge_runner.models.signatures import MethodKind, MethodSignature
from edge_runner.protocol.codec import MAX_FRAME_BYTES
from edge_runner.views import JSONObject

if TYPE_CHECKING:
    from fastapi import FastAPI

    from edge_runner.control.registry import TokenInfo
    from edge_runner.control.state import ControlState

__all__ = ["CLOSE_CODES", "STREAM_IN_WS_PATH", "add_stream_in_ws_route"]

logger = logging.getLogger(__name__)

#: the route; the authentication gate lets a WebSocket to it in without a header
#: (:data:`~.http_gate.TOKEN_IN_MESSAGE`): the token may come in the first message
STREAM_IN_WS_PATH = "/v2/models/{model_id}/{method}/ws"
_TYPES = ("start", "input", "end", "cancel")
#: An item travels to the runner in one tunnel frame; uvicorn's ``ws_max_size`` (the tunnel's
#: frame cap, for the WebSocket tunnel) is the hard limit on any message before it gets here.
_MAX_MESSAGE_BYTES = MAX_FRAME_BYTES - 64 * 1024

#: the WebSocket close code (RFC 6455) after an error the client caused; 1000 for the others
CLOSE_CODES: dict[str, int] = {
    ErrorCode.UNAUTHENTICATED: 1008,
    ErrorCode.MISSING_SCOPE: 1008,
    ErrorCode.INVALID_JSON: 1007,
    ErrorCode.INVALID_BODY: 1007,
    ErrorCode.INVALID_ARGUMENT: 1007,
    ErrorCode.BODY_TOO_LARGE: 1009,
}


class _Refusal(Exception):  # noqa: N818 - the error message to send, not a failure of ours
    """Raised to end the call with an error message (and to cancel its task, if any)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def add_stream_in_ws_route(app: FastAPI, state: ControlState) -> None:
    """Serve stream-in calls over WebSocket at :data:`STREAM_IN_WS_PATH`."""

    async def stream_in(ws: WebSocket) -> None:
        await _StreamInSocket(state, ws).serve()

    app.router.add_websocket_route(STREAM_IN_WS_PATH, stream_in)


class _StreamInSocket:
    """One WebSocket carrying one stream-in call; see the module docstring."""

    def __init__(self, state: ControlState, ws: WebSocket) -> None:
        self.state = state
        self.ws = ws
        self.model_id: str = ws.path_params["model_id"]
        self.method: str = ws.path_params["method"]
        self.call: StreamInCall | None = None

    async def serve(self) -> None:
        """Authenticate, start the task, then move input and output until either ends."""
        settings = self.state.settings
        caller: TokenInfo | None = self.ws.scope.get(TOKEN_KEY)
        await self.ws.accept()
        try:
            signature = self._signature(caller) if caller is not None else None
            # Until a token is known the first message waits as long as a request head may.
            wait = settings.body_idle_timeout if caller is not None else settings.header_timeout
            first = await self._receive(wait)
            if first is None:
                return
            if caller is None:
                caller = self._authenticate(first)
                signature = self._signature(caller)
            assert signature is not None
            call = self.call = StreamInCall(self.state, caller, self.model_id, signature)
            args = self._arguments(call, first)
            try:
                task = call.start(args)
            except ApiProblem as exc:
                raise _Refusal(exc.code, exc.message) from exc
        except _Refusal as exc:
            await self._finish(exc.code, exc.message)
            return
        if not await self._send({"type": "started", "task_id": task.task_id}):
            call.cancel("the client closed the WebSocket")
            return
        reader = asyncio.create_task(self._read(call, None if first["type"] == "start" else first))
        try:
            await self._write(call)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    # -- setting up -------------------------------------------------------------------------

    def _authenticate(self, first: JSONObject) -> TokenInfo:
        token = first.get("token") if first["type"] == "start" else None
        info = self.state.auth.verify(token) if isinstance(token, str) and token else None
        if info is None:
            raise _Refusal(
                ErrorCode.UNAUTHENTICATED,
                "no valid token: send it in an 'Authorization: Bearer <token>' header, or as "
                '"token" in a first message {"type": "start", "token": "..."}; create one with '
                "`edge-runner token create --scope predict`",
            )
        return info

    def _signature(self, caller: TokenInfo) -> MethodSignature:
        """The method called, checked: the caller may predict, and it takes a stream."""
        if "predict" not in caller.scopes:
            raise _Refusal(
                ErrorCode.MISSING_SCOPE,
                f"this token lacks the 'predict' scope (it has: {', '.join(sorted(caller.scopes))})"
                "; create one with `edge-runner token create --scope predict`",
            )
        entry = self.state.catalog.get(caller.user_id, self.model_id)
        if entry is None:
            known = [e.model_id for e in self.state.catalog.for_user(caller.user_id)]
            hint = f"known models: {', '.join(known)}" if known else "no model is registered yet"
            raise _Refusal(ErrorCode.UNKNOWN_MODEL, f"no model {self.model_id!r}; {hint}")
        signature = entry.methods.get(self.method)
        if signature is None:
            raise _Refusal(
                ErrorCode.UNKNOWN_METHOD,
                f"model {self.model_id!r} has no method {self.method!r}; "
                f"its methods: {', '.join(sorted(entry.methods))}",
            )
        if signature.kind is not MethodKind.BIDI:
            raise _Refusal(
                ErrorCode.BAD_REQUEST,
                f"{self.model_id}.{self.method} takes no input stream: call it with "
                f"POST /v2/models/{self.model_id}/{self.method} (this WebSocket route is for "
                "methods that take an Iterator)",
            )
        return signature

    def _arguments(self, call: StreamInCall, first: JSONObject) -> JSONObject:
        args = first.get("args", {}) if first["type"] == "start" else {}
        if not isinstance(args, dict):
            raise _Refusal(
                ErrorCode.INVALID_BODY,
                f'"args" of the start message must be a JSON object of {self.method}()\'s '
                "keyword arguments other than its input stream",
            )
        try:
            return call.check_arguments(args)
        except InvalidArgument as exc:
            raise _Refusal(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc

    # -- the two directions -----------------------------------------------------------------

    async def _read(self, call: StreamInCall, message: JSONObject | None) -> None:
        """Client to task: each item once the runner has room for it; cancels on any failure."""
        idle = self.state.settings.body_idle_timeout
        index = 0
        ended = False
        try:
            while True:
                if message is None:
                    message = await self._receive(None if ended else idle)
                    if message is None:
                        call.cancel("the client closed the WebSocket")
                        return
                kind = message["type"]
                if kind == "input" and not ended:
                    if "data" not in message:
                        raise _Refusal(ErrorCode.INVALID_BODY, 'an input message needs "data"')
                    try:
                        payload = call.check_item(message["data"], index)
                    except InvalidArgument as exc:
                        raise _Refusal(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
                    if not await call.send(payload):
                        return  # the task finished: the writer tells the client
                    index += 1
                elif kind == "end" and not ended:
                    await call.end()
                    ended = True
                elif kind == "cancel":
                    call.cancel("cancelled by the client")
                    return
                else:
                    where = "after the end of input" if ended else "after the first message"
                    raise _Refusal(ErrorCode.INVALID_BODY, f"{kind!r} message {where}")
                message = None
        except _Refusal as exc:
            call.cancel(exc.message, exc.code)
        except Exception:  # a bug: fail the call rather than leave the writer waiting
            logger.exception("stream-in WebSocket reader failed on %s", self.ws.url.path)
            call.cancel("the control plane failed reading this stream", ErrorCode.INTERNAL_ERROR)

    async def _write(self, call: StreamInCall) -> None:
        """Task to client: outputs as they come, then ``done`` or ``error`` and the close."""
        task = call.task
        assert task is not None
        index = 0
        async with contextlib.aclosing(call.outputs()) as events:
            async for event in events:
                if isinstance(event, TaskOutput):
                    data = (event.payload or b"null").decode()
                    text = f'{{"type":"output","index":{index},"data":{data}}}'
                    if not await self._send_text(text):
                        return  # closing the generator cancels the task
                    index += 1
                elif isinstance(event, TaskDone):
                    done: JSONObject = {
                        "type": "done",
                        "task_id": task.task_id,
                        "inputs": task.inputs,
                        "outputs": index,
                    }
                    if event.usage is not None:
                        done["usage"] = {
                            "prompt_tokens": event.usage.prompt_tokens,
                            "completion_tokens": event.usage.completion_tokens,
                        }
                    if await self._send(done):
                        await self._close(1000, "done")
                else:
                    assert isinstance(event, TaskFailedEvent)
                    await self._finish(event.code, event.message)

    # -- messages ---------------------------------------------------------------------------

    async def _receive(self, idle: float | None) -> JSONObject | None:
        """The client's next message, parsed and checked; None when it closed the socket."""
        try:
            async with asyncio.timeout(idle):
                message = await self.ws.receive()
        except TimeoutError as exc:
            if self.call is None:
                raise _Refusal(
                    ErrorCode.UNAUTHENTICATED,
                    f"no start message with a token arrived within {idle:g} s",
                ) from exc
            raise _Refusal(
                ErrorCode.BODY_TIMEOUT,
                f"the client sent nothing for {idle:g} s while the model waited for input "
                "(the control plane's --body-idle-timeout); the task was cancelled",
            ) from exc
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            raise _Refusal(
                ErrorCode.INVALID_BODY, "messages must be text (one JSON object), got binary"
            )
        limit = min(self.state.settings.max_body_bytes, _MAX_MESSAGE_BYTES)
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            raise _Refusal(
                ErrorCode.BODY_TOO_LARGE,
                f"a message of {len(text.encode())} bytes, over the {limit}-byte limit of one "
                "message (the control plane's --max-body-bytes)",
            )
        try:
            value = parse_json(text.encode())
        except ValueError as exc:
            raise _Refusal(ErrorCode.INVALID_JSON, f"a message is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise _Refusal(
                ErrorCode.INVALID_BODY,
                f'each message must be a JSON object with a "type", got {text[:40]!r}',
            )
        kind = value.get("type")
        if kind not in _TYPES:
            raise _Refusal(
                ErrorCode.INVALID_BODY,
                f"unknown message type {kind!r}; the types are: {', '.join(_TYPES)}",
            )
        return value

    async def _finish(self, code: str, message: str) -> None:
        """Send the error message and close with the code that fits."""
        error: JSONObject = {"type": "error", "code": code, "message": message}
        task = self.call.task if self.call is not None else None
        if task is not None:
            error["task_id"] = task.task_id
        logger.debug("stream-in WebSocket %s ends: %s %s", self.ws.url.path, code, message)
        if await self._send(error):
            await self._close(CLOSE_CODES.get(code, 1000), str(code))

    async def _send(self, message: JSONObject) -> bool:
        return await self._send_text(json.dumps(message, separators=(",", ":")))

    async def _send_text(self, text: str) -> bool:
        """Send one message; False when the client is gone. A client that reads nothing for
        longer than the stream idle limit is given up on (its task is cancelled by then)."""
        settings = self.state.settings
        stall = settings.stream_idle_timeout + max(1.0, settings.stream_idle_timeout / 4)
        try:
            async with asyncio.timeout(stall):
                await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
            return False
        return True

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.close(code, reason)
