"""What both sides of a tunnel session share: the frame dispatch, failing on a broken
protocol, and the protocol constants (see :mod:`edge_runner.protocol.session`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from edge_runner.errors import ErrorCode, ProtocolError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol.records import SessionState

__all__ = [
    "INPUT_STREAM_MINOR",
    "RUNNER_ID_PATTERN",
    "STREAM_CREDIT_MINOR",
    "Session",
    "now_ms",
    "speaks",
]

#: What a runner id looks like (``runner-<12 hex>`` when generated); it is shown in banners,
#: tables and logs, so control characters and unbounded lengths are refused at the Hello.
RUNNER_ID_PATTERN: re.Pattern[str] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")

_E = TypeVar("_E", pb.RunnerMessage, pb.ControlMessage)

#: the first protocol minor (of major 1) with per-task stream credit
STREAM_CREDIT_MINOR = 2
#: the first protocol minor (of major 1) with stream-in tasks (input chunks and input credit)
INPUT_STREAM_MINOR = 3


def speaks(version: pb.ProtocolVersion, minor: int) -> bool:
    """Whether a peer of ``version`` speaks protocol ``1.minor`` or later."""
    return version.major > 1 or version.minor >= minor


def now_ms() -> int:
    return int(time.time() * 1000)


#: a handler of one received message kind: the session and the message in, events out
_Handler = Callable[[Any, Any], list[Any]]


class Session:
    """The part of a session both sides share (frames in, dispatch, failing)."""

    #: the state before the opening message arrives, and that message's oneof name
    _AWAITING: ClassVar[SessionState]
    _OPENING: ClassVar[str]
    #: message kinds accepted in any state, even before the opening one
    _ANY_STATE: ClassVar[frozenset[str]] = frozenset()
    #: oneof name -> handler, for every kind allowed once the session is open
    _HANDLERS: ClassVar[Mapping[str, _Handler]]

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self.state = SessionState.CLOSED
        self.close_reason = ""
        #: the Error code this side sent when it closed the session ("" for a clean close)
        self.close_code = ""

    def data_to_send(self) -> list[bytes]:
        """Return and clear the frames queued for the peer."""
        out, self._out = self._out, []
        return out

    def _decode(self, data: bytes, decode: Callable[[bytes], _E]) -> _E:
        """Decode a frame; a malformed one closes the session."""
        if self.state is SessionState.CLOSED:
            raise ProtocolError("session is closed")
        try:
            return decode(data)
        except ProtocolError as exc:
            raise self._fail(ErrorCode.MALFORMED_FRAME, str(exc)) from exc

    def _dispatch(self, envelope: pb.RunnerMessage | pb.ControlMessage) -> list[Any]:
        """Hand one decoded envelope to its handler (one dispatch style for both sides)."""
        kind = envelope.WhichOneof("kind")
        if self.state is self._AWAITING and kind not in self._ANY_STATE:
            if kind != self._OPENING:
                expected = self._OPENING.capitalize()
                raise self._fail(
                    ErrorCode.PROTOCOL, f"expected {expected} as the first message, got {kind}"
                )
            return self._open(getattr(envelope, kind))
        handler = self._HANDLERS.get(kind or "")
        if handler is None or kind is None:
            raise self._fail(ErrorCode.PROTOCOL, f"unexpected {kind} on an open tunnel")
        return handler(self, getattr(envelope, kind))

    def _open(self, message: Any) -> list[Any]:
        """Handle the opening message (Hello or Welcome)."""
        raise NotImplementedError

    def _on_passthrough(self, message: Any) -> list[Any]:
        """A message that changes nothing here: hand it up as it is."""
        return [message]

    def _fail(
        self, code: str, message: str, cls: type[ProtocolError] = ProtocolError
    ) -> ProtocolError:
        """Queue an Error for the peer, close, and build the exception to raise."""
        self._queue_error(code, message)
        self.state = SessionState.CLOSED
        self.close_reason = message
        self.close_code = code
        return cls(message)

    def _queue_error(self, code: str, message: str) -> None:
        raise NotImplementedError
