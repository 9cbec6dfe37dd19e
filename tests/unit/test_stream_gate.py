"""The runner's stream gate: a worker produces only as many chunks as its credit allows."""

from __future__ import annotations

import threading

from edge_runner.backends.base import CancelEvent
from edge_runner.runner.executor import StreamGate
from tests.conftest import wait_for


def _producer(gate: StreamGate, cancel: CancelEvent, produced: list[int]) -> threading.Thread:
    def run() -> None:
        n = 0
        while n < 100 and gate.wait_turn(n, cancel):
            produced.append(n)
            n += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_gate_holds_the_worker_at_its_credit_until_granted_more() -> None:
    """A worker stops at its credit, goes on when granted more, and a grant never shrinks."""
    gate, cancel, produced = StreamGate(3), CancelEvent(), []
    thread = _producer(gate, cancel, produced)
    wait_for(lambda: len(produced) == 3, "three chunks")
    assert thread.is_alive() and produced == [0, 1, 2]
    gate.grant(2)  # an older, smaller grant changes nothing
    assert gate.allowed == 3
    gate.grant(7)
    wait_for(lambda: len(produced) == 7, "seven chunks")
    assert thread.is_alive()
    cancel.on_set(gate.wake)
    cancel.set()
    thread.join(5)
    assert not thread.is_alive() and len(produced) == 7


def test_an_unlimited_gate_never_waits() -> None:
    """Without stream credit (a 1.1 control plane) the worker streams freely."""
    gate, cancel, produced = StreamGate(None), CancelEvent(), []
    _producer(gate, cancel, produced).join(5)
    assert len(produced) == 100
