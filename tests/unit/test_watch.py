"""The backends' Watcher: probes on its interval, but not while calls are in flight (they show
the server answering, and a probe can interrupt them), except when a failed call wakes it."""

from __future__ import annotations

import threading

from edge_runner.backends.watch import Watcher
from tests.conftest import MS, wait_for


class _Server:
    """What the watcher watches: counts probes, can be busy and can fail."""

    def __init__(self) -> None:
        self.probes = 0
        self.busy = False
        self.failing = False
        self.downs: list[str] = []
        self.prepared = threading.Event()
        #: the lock calls take to start; every probe must run holding it
        self.guard = threading.Lock()
        self.unguarded = 0

    def probe(self) -> None:
        self.probes += 1
        if not self.guard.locked():
            self.unguarded += 1
        if self.failing:
            raise ConnectionError("refused")


def _watcher(server: _Server, interval: float) -> Watcher:
    watcher = Watcher(
        "the test server",
        interval,
        prepare=server.prepared.set,
        probe=server.probe,
        went_down=server.downs.append,
        busy=lambda: server.busy,
        guard=server.guard,
    )
    watcher.start()
    return watcher


def test_it_probes_on_its_interval_when_idle() -> None:
    """Idle: a probe every interval."""
    server = _Server()
    watcher = _watcher(server, 5 * MS)
    try:
        wait_for(lambda: server.probes >= 3, "three probes")
    finally:
        watcher.stop()
    assert server.prepared.is_set() and not server.downs
    assert server.unguarded == 0  # no call could start during a probe


def test_calls_in_flight_hold_the_periodic_probe_but_not_a_wake() -> None:
    """Busy: no periodic probe, however many intervals pass; a wake (a call failed) probes at
    once, and an outage is found as before."""
    server = _Server()
    server.busy = True
    watcher = _watcher(server, 5 * MS)
    try:
        wait_for(lambda: server.prepared.is_set(), "the watcher to start")
        # An observation window (absence can only be seen over time): twenty intervals pass
        # without a probe.
        threading.Event().wait(100 * MS)
        assert server.probes == 0
        server.failing = True
        watcher.wake()
        wait_for(lambda: bool(server.downs), "the outage")
        assert "refused" in server.downs[0]
        assert watcher.is_down
        probes = server.probes
        # while down it probes on its interval even if busy: it must see the server come back
        wait_for(lambda: server.probes > probes + 2, "probes during the outage")
        server.failing = False
        wait_for(lambda: not watcher.is_down, "the server to be seen again")
    finally:
        watcher.stop()
