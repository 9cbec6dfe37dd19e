"""The client side of stream-in calls: the WebSocket route ``/v2/models/{id}/{method}/ws``.

:meth:`edge_runner.client.Client.stream` and :meth:`~edge_runner.client.AsyncClient.stream`
use these. One WebSocket carries the call both ways: the client sends a start message with the
other arguments, then one ``input`` message per item and an ``end``; the server answers
``started``, one ``output`` message per output and ``done`` (or ``error``). A sender task feeds
the inputs while the outputs are read, so neither direction waits for the other (the blocking
client runs the same coroutine in a thread of its own); the server reads an input only when
the model has room for it, so a model slower than its input holds the sender back. Errors are
translated at this boundary into the :mod:`edge_runner.errors` tree, as the HTTP client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import ssl
import threading
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, cast

import websockets
from websockets.asyncio.client import connect as aconnect

from edge_runner.errors import (
    ApiError,
    ConnectionFailed,
    ErrorCode,
    TaskFailed,
    Unauthorized,
    api_error,
)
from edge_runner.views import JSONValue

__all__ = ["astream_in", "stream_in", "ws_url"]

#: what each error code of the route means as an HTTP status (for ApiError.status)
_CODE_STATUS: dict[str, int] = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.MISSING_SCOPE: 403,
    ErrorCode.UNKNOWN_MODEL: 404,
    ErrorCode.UNKNOWN_METHOD: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_BODY: 400,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.BODY_TIMEOUT: 408,
    ErrorCode.NOT_IMPLEMENTED: 501,
    ErrorCode.RUNNER_TOO_OLD: 501,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.SLOW_READER: 429,
    ErrorCode.NO_RUNNER: 503,
    ErrorCode.MODEL_LOADING: 503,
    ErrorCode.MODEL_UNAVAILABLE: 503,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.CANCELLED: 409,
    ErrorCode.RUNNER_LOST: 502,
    ErrorCode.DEADLINE_EXCEEDED: 504,
}

#: the largest message the client accepts from the server (an output: an image, say)
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: outputs the blocking client holds for a caller that has not taken them yet
_SYNC_BUFFER = 64
#: how often a full hand-off queue is looked at again (the caller is reading slowly)
_HANDOFF_POLL_S = 0.005
#: input items a reading thread takes from the caller's iterable before they are sent
_READ_AHEAD = 16


def ws_url(api_base: str, path: str) -> str:
    """The ``ws://`` or ``wss://`` URL of ``path`` on the control plane at ``api_base``."""
    if api_base.startswith("https://"):
        return "wss://" + api_base.removeprefix("https://") + path
    return "ws://" + api_base.removeprefix("http://") + path


def _error(doc: dict[str, Any]) -> ApiError:
    code = str(doc.get("code") or ErrorCode.HTTP_ERROR)
    status = _CODE_STATUS.get(code, 500)
    return api_error(status, code, str(doc.get("message", "")))


def _item(value: object) -> str:
    """One input message; data types (Image, bytes...) become their JSON forms."""
    if not (value is None or isinstance(value, str | int | float | bool | list | dict)):
        from edge_runner.models.codec import to_jsonable  # only data types need it

        value = to_jsonable(None, value)
    return json.dumps({"type": "input", "data": value})


def _start(args: object) -> str:
    return json.dumps({"type": "start", "args": args})


def _output(raw: str | bytes) -> tuple[str, JSONValue]:
    """A server message as (``output`` / ``done`` / ``started``, its data); errors raise."""
    try:
        doc = json.loads(raw)
        kind = doc["type"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskFailed(
            502, ErrorCode.BAD_RUNNER_ANSWER, f"the server sent a message that is not ours: {exc}"
        ) from exc
    if kind == "error":
        raise _error(doc)
    if kind == "output":
        return kind, doc.get("data")
    return str(kind), doc


def _checked(raw: str | bytes, failure: list[BaseException]) -> tuple[str, JSONValue]:
    """:func:`_output`, except that the caller's own failure (its input iterable raised, so
    the call was cancelled) wins over the server's answer to it."""
    try:
        return _output(raw)
    except ApiError as exc:
        if failure:
            raise failure[0] from exc
        raise


def _refused(exc: Exception, url: str) -> ApiError | ConnectionFailed:
    """What a failed WebSocket handshake means."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status in (401, 403):
        return Unauthorized(
            401,
            ErrorCode.UNAUTHENTICATED,
            "the control plane refused the token; log in again (`edge-runner login`)",
        )
    if status is not None:
        return api_error(
            status, ErrorCode.HTTP_ERROR, f"the WebSocket handshake at {url} got HTTP {status}"
        )
    return ConnectionFailed(
        f"cannot reach the control plane at {url} ({type(exc).__name__}: {exc}); is it "
        "running? (`edge-runner up` or `edge-runner control`)"
    )


def stream_in(
    url: str,
    token: str,
    inputs: Iterable[object],
    args: object,
    *,
    ssl_context: ssl.SSLContext | None,
    idle_timeout: float | None,
) -> Iterator[JSONValue]:
    """Run a stream-in call; yields outputs as they arrive (see the module docstring).

    The call runs on :func:`astream_in` in an event loop of its own thread: websockets' blocking
    client holds one lock while a send waits for the socket, and its reader needs that lock, so
    a sender held back by the model (back-pressure) would stop the outputs that free it.
    Outputs reach the caller through a queue of :data:`_SYNC_BUFFER`; a caller that reads
    slowly holds the loop's reading back, and with it the server.

    Raises:
        ApiError: the call failed (the subclass follows the error code).
        ConnectionFailed: the control plane could not be reached, or the connection broke.
    """
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=_SYNC_BUFFER)
    gone = threading.Event()  # the caller stopped reading

    async def put(kind: str, value: object) -> None:
        while not gone.is_set():
            try:
                handoff.put_nowait((kind, value))
                return
            except queue.Full:
                await asyncio.sleep(_HANDOFF_POLL_S)

    async def pump() -> None:
        outputs = astream_in(
            url, token, inputs, args, ssl_context=ssl_context, idle_timeout=idle_timeout
        )
        try:
            async for item in outputs:
                await put("output", item)
                if gone.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            await put("error", exc)
        else:
            await put("end", None)
        finally:
            await outputs.aclose()

    loop = asyncio.new_event_loop()
    task = loop.create_task(pump())
    thread = threading.Thread(
        target=loop.run_until_complete, args=(task,), name="edge-runner-stream-in", daemon=True
    )
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "output":
                yield cast(JSONValue, value)
            elif kind == "error":
                assert isinstance(value, BaseException)
                raise value
            else:
                return
    finally:
        gone.set()  # a caller that stops reading early cancels the call
        loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


async def _items(inputs: Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    """The caller's inputs, without blocking the loop: a list or tuple as it is, an async
    iterable awaited, any other iterable (a generator reading stdin, a microphone) read by a
    thread of its own that stays at most :data:`_READ_AHEAD` items ahead of the sending."""
    if isinstance(inputs, AsyncIterable):
        async for value in inputs:
            yield value
        return
    if isinstance(inputs, list | tuple):
        for value in inputs:
            yield value
        return
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[tuple[bool, object]] = asyncio.Queue()
    room = threading.Semaphore(_READ_AHEAD)
    stop = threading.Event()

    def read() -> None:
        try:
            for value in inputs:
                room.acquire()
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(ready.put_nowait, (True, value))
        except BaseException as exc:  # noqa: BLE001 - the caller's iterable failed: hand it over
            loop.call_soon_threadsafe(ready.put_nowait, (False, exc))
            return
        loop.call_soon_threadsafe(ready.put_nowait, (False, None))

    reader = threading.Thread(target=read, name="edge-runner-stream-in-input", daemon=True)
    reader.start()
    try:
        while True:
            more, value = await ready.get()
            if not more:
                if isinstance(value, BaseException):
                    raise value
                return
            room.release()
            yield value
    finally:
        stop.set()
        room.release()  # a reader waiting for room sees the stop


async def astream_in(
    url: str,
    token: str,
    inputs: Iterable[object] | AsyncIterable[object],
    args: object,
    *,
    ssl_context: ssl.SSLContext | None,
    idle_timeout: float | None,
) -> AsyncGenerator[JSONValue, None]:
    """:func:`stream_in` for asyncio; ``inputs`` may be an async iterable."""
    try:
        ws = await aconnect(
            url,
            ssl=ssl_context if url.startswith("wss://") else None,
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=_MAX_MESSAGE_BYTES,
            open_timeout=10 if idle_timeout is None else min(10.0, idle_timeout),
            close_timeout=2,
        )
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        raise _refused(exc, url) from exc
    failure: list[BaseException] = []

    async def send_all() -> None:
        try:
            await ws.send(_start(args))
            async for value in _items(inputs):
                await ws.send(_item(value))
            await ws.send('{"type":"end"}')
        except websockets.ConnectionClosed:
            pass
        except Exception as exc:  # the caller's iterable failed: the call is off
            failure.append(exc)
            with contextlib.suppress(websockets.WebSocketException, OSError):
                await ws.send('{"type":"cancel"}')

    sender = asyncio.ensure_future(send_all())
    try:
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    raw = await ws.recv()
            except TimeoutError as exc:
                raise TaskFailed(
                    504, ErrorCode.DEADLINE_EXCEEDED, f"nothing arrived for {idle_timeout:g} s"
                ) from exc
            except websockets.ConnectionClosed as exc:
                if failure:
                    raise failure[0] from exc
                raise ConnectionFailed(
                    f"the stream-in call at {url} closed before it ended ({exc})"
                ) from exc
            kind, data = _checked(raw, failure)
            if kind == "output":
                yield data
            elif kind == "done":
                return
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await ws.close()
