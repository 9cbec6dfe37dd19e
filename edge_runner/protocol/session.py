"""Tunnel session state machines, one per side, with no I/O.

Each side feeds received frames to ``receive_frame()`` and gets back the events they carry (the
protobuf sub-messages themselves: ``pb.Task``, ``pb.Result``, ...); calls like ``send_task()``
queue outgoing frames that the transport collects with ``data_to_send()``.

Flow control is credit-based at two levels. Tasks: the runner *grants* slots per model
(``Credit.grant``, additive), the control plane spends one per ``Task`` and never sends a task
without one, and every terminal message (``Result`` or ``TaskError``) gives its slot back.
Stream output (protocol 1.2): a streaming task may send chunks numbered below its stream
credit, ``Welcome.stream_window`` at first, then whatever the control plane's latest
``StreamCredit`` says (absolute, so it only grows). A violation of these rules — a message
out of order, a task over credit, a chunk beyond its stream credit, a chunk for an unknown
task — queues an ``Error`` frame for the peer, closes the session and raises
:class:`~edge_runner.errors.ProtocolError`; the transport then closes that one tunnel.

Stream input (protocol 1.3) is the mirror image: a ``Task`` with ``input_stream`` set is
followed by ``InputChunk`` frames, numbered from 0, which the control plane sends only below the
task's latest ``InputCredit`` from the runner, then by one ``InputEnd`` that counts them. The
runner grants a window when it takes the task and more as the method consumes items. An item
out of order, beyond the credit or after the end breaks the protocol; a late one for a task the
runner already finished is dropped. A control plane never sends a stream-in task to a runner
older than 1.3 (:attr:`ControlSession.input_streams`).

Stream credit is used only when both sides speak 1.2: the control plane never sends
``StreamCredit`` to an older runner (it could not parse it), and a runner welcomed without a
``stream_window`` streams freely, as in 1.1.

Session states::

    control:  AWAITING_HELLO --Hello/accept()--> OPEN --Draining--> DRAINING --> CLOSED
    runner:   AWAITING_WELCOME --Welcome--> OPEN --draining()--> DRAINING --> CLOSED

Both sides dispatch a received frame the same way: the message that opens the session
(``Hello``, ``Welcome``) is the only one accepted before it is open, then each message kind (the
envelope's oneof name) has one handler in the side's handler table; a kind with no handler
breaks the protocol.
"""

from __future__ import annotations

from edge_runner.protocol.control_session import ControlSession
from edge_runner.protocol.records import (
    ControlEvent,
    InflightTask,
    RunnerEvent,
    RunnerTask,
    SessionState,
)
from edge_runner.protocol.runner_session import RunnerSession
from edge_runner.protocol.session_base import (
    INPUT_STREAM_MINOR,
    RUNNER_ID_PATTERN,
    STREAM_CREDIT_MINOR,
)

__all__ = [
    "INPUT_STREAM_MINOR",
    "RUNNER_ID_PATTERN",
    "STREAM_CREDIT_MINOR",
    "ControlEvent",
    "ControlSession",
    "InflightTask",
    "RunnerEvent",
    "RunnerSession",
    "RunnerTask",
    "SessionState",
]
