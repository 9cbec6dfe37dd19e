"""Stream-in calls, whatever carries them (the WebSocket route or an NDJSON request body).

A stream-in method (``def s(self, items: Iterator[str], lang: str = "en") -> Iterator[str]``)
takes its other arguments once, when the call starts, and then one input item at a time. The
routes parse their own wire format and share what is here: checking the start arguments and
each item against the signature, creating and submitting the task, sending each item only when
the runner has granted input credit (protocol 1.3) so that a model slower than its input holds
the client back, and reading the task's output with the timers that fit a stream that is fed
as it runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator

from edge_runner.control.http_common import submit_task
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import Task, TaskEvent, TaskFailedEvent, TaskOutput, TaskState
from edge_runner.errors import ErrorCode, InvalidArgument, TypeMismatch
from edge_runner.models.json_types import TypeSpec, check_value, mismatch_message
from edge_runner.models.signatures import (
    MethodSignature,
    input_stream_param,
    validate_arguments,
)
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import JSONObject, JSONValue

__all__ = ["StreamInCall"]


class StreamInCall:
    """One stream-in call: its signature, its task once started, and its input and output.

    Args:
        state: the control plane.
        caller: who calls (the token's user and id).
        model_id: the model.
        signature: the method's signature (``kind`` is ``BIDI``).
    """

    def __init__(
        self, state: ControlState, caller: TokenInfo, model_id: str, signature: MethodSignature
    ) -> None:
        self.state = state
        self.caller = caller
        self.model_id = model_id
        self.signature = signature
        param = input_stream_param(signature)
        if param is None:
            raise ValueError(f"{signature.name}() takes no input stream")
        self.param = param
        item = self.param.spec.args[0] if self.param.spec.args else None
        self._item_spec: TypeSpec | None = item
        self.task: Task | None = None
        #: when the input ended (monotonic), or None while it flows
        self.ended_at: float | None = None

    @property
    def item_type(self) -> str:
        """The type of one input item, as the signature writes it (``str``, ``Image``...)."""
        return str(self._item_spec) if self._item_spec is not None else "any JSON value"

    def check_arguments(self, args: JSONValue) -> JSONObject:
        """Check the start arguments (all but the stream one) and fill in their defaults.

        Raises:
            InvalidArgument: as for any call; passing the stream parameter itself is refused
                with a message that says where items go.
        """
        return validate_arguments(self.signature, args, input_stream=True)

    def check_item(self, value: JSONValue, index: int) -> bytes:
        """Check one input item against the stream's element type; its JSON bytes.

        Raises:
            InvalidArgument: the item is not of the element type; the message names the
                parameter and the item's index (from 0).
        """
        if self._item_spec is not None:
            try:
                value = check_value(self._item_spec, value)
            except TypeMismatch as exc:
                subject = f"input item {index} of '{self.param.name}'"
                message = mismatch_message(subject, self.item_type, exc)
                raise InvalidArgument(message, argument=self.param.name) from exc
        return json.dumps(value, separators=(",", ":")).encode()

    def start(self, args: JSONObject) -> Task:
        """Create the task with the checked arguments and submit it.

        Raises:
            ApiProblem: 429 (queue full), 501 ``RUNNER_TOO_OLD``, 503 (model loading), as
                :func:`~edge_runner.control.http_common.submit_task` answers.
        """
        payload = json.dumps(args).encode()
        task = self.state.new_task(self.caller, self.model_id, self.signature.name, payload)
        task.input_stream = True
        task.input_wakeup = asyncio.Event()
        task.deadline_unix_ms = 0  # fed as it runs: idle limits apply, not a whole deadline
        submit_task(self.state, task)
        self.task = task
        return task

    async def send(self, payload: bytes) -> bool:
        """Send one checked item once the runner grants room for it.

        Returns:
            False when the task finished (failed, cancelled, or its method returned) before the
            item could go: the caller stops reading input.
        """
        task = self.task
        assert task is not None, "start() first"
        dispatcher = self.state.dispatcher
        wakeup = task.input_wakeup
        assert wakeup is not None  # start() made it
        while dispatcher.input_room(task) <= 0:
            if task.finished:
                return False
            wakeup.clear()
            if dispatcher.input_room(task) > 0:
                break
            await wakeup.wait()
        dispatcher.send_input(task, payload)
        return True

    async def end(self) -> None:
        """The input is complete: the method's iterator ends after the items sent. A task
        still queued gets its end once it reaches a runner (this waits for that)."""
        task = self.task
        assert task is not None, "start() first"
        wakeup = task.input_wakeup
        assert wakeup is not None  # start() made it
        while task.link is None and not task.finished:
            wakeup.clear()
            if task.link is not None:
                break
            await wakeup.wait()
        self.state.dispatcher.end_input(task)
        self.ended_at = time.monotonic()

    def cancel(self, reason: str, code: str = ErrorCode.CANCELLED) -> None:
        """Cancel the task (the client went away, or sent something unusable)."""
        if self.task is not None:
            self.state.dispatcher.cancel(self.task, reason, code)

    async def outputs(self) -> AsyncGenerator[TaskEvent, None]:
        """The task's events until its terminal one; cancels the task if abandoned.

        Each output handed on counts as read (credit for the runner, as for stream-out).
        Timers: a task still queued after ``request_timeout`` fails as any request would
        (``NO_RUNNER``, or the model's loading state); until the input ends a model that
        outputs nothing is not idle (it may be waiting for input, and the client's pauses have
        the input idle limit); after it the model gets ``stream_idle_timeout`` between
        outputs; the whole call is bounded by ``max_stream_duration``.
        """
        task = self.task
        assert task is not None, "start() first"
        settings = self.state.settings
        dispatcher = self.state.dispatcher
        last_output = time.monotonic()
        try:
            while True:
                failure = self._timed_out(task, last_output)
                if failure is not None:
                    dispatcher.cancel(task, failure.message, failure.code)
                    yield failure
                    return
                now = time.monotonic()
                wait = min(
                    settings.stream_idle_timeout,
                    settings.max_stream_duration - (now - task.created),
                )
                if task.state is TaskState.QUEUED:
                    wait = min(wait, settings.request_timeout - (now - task.created))
                if self.ended_at is not None:
                    quiet = now - max(last_output, self.ended_at)
                    wait = min(wait, settings.stream_idle_timeout - quiet)
                try:
                    async with asyncio.timeout(max(0.0, wait)):
                        event = await task.events.get()
                except TimeoutError:
                    continue  # _timed_out says whether a limit was reached
                last_output = time.monotonic()
                yield event
                if not isinstance(event, TaskOutput):
                    return
                dispatcher.stream_consumed(task)
        finally:
            if not task.finished:
                dispatcher.cancel(task, "the client went away")

    def _timed_out(self, task: Task, last_output: float) -> TaskFailedEvent | None:
        """The failure for a limit the call has reached, or None."""
        settings = self.state.settings
        now = time.monotonic()
        age = now - task.created
        if task.state is TaskState.QUEUED and age >= settings.request_timeout:
            waiting = self.state.dispatcher.not_ready(task.user_id, task.model_id)
            if waiting is not None:
                return TaskFailedEvent(
                    ErrorCode.MODEL_LOADING
                    if waiting.state == pb.LOADING
                    else ErrorCode.MODEL_UNAVAILABLE,
                    waiting.message or f"{task.model_id} is not ready",
                )
            return TaskFailedEvent(
                ErrorCode.NO_RUNNER,
                f"no runner took the stream-in call to {task.model_id!r} within "
                f"{settings.request_timeout:g} s; start one with `edge-runner runner PATH`",
            )
        if age >= settings.max_stream_duration:
            return TaskFailedEvent(
                ErrorCode.DEADLINE_EXCEEDED,
                f"the stream reached its maximum duration of {settings.max_stream_duration:g} "
                "s (the control plane's --max-stream-duration); the task was cancelled",
            )
        if self.ended_at is not None:
            quiet = now - max(last_output, self.ended_at)
            if quiet >= settings.stream_idle_timeout:
                return TaskFailedEvent(
                    ErrorCode.DEADLINE_EXCEEDED,
                    f"model {task.model_id!r} sent nothing for {settings.stream_idle_timeout:g} "
                    "s after its input ended (the control plane's --stream-idle-timeout); the "
                    "task was cancelled",
                )
        return None
