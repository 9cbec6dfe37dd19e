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


def test_a_cold_start_waits_then_becomes_an_outage_then_heals() -> None:
    """Started with wait_up_to: a server that does not answer is starting (``waiting``), not
    down, until the time is up; then the outage starts (``went_down``); the first answer after
    that prepares the models as any comeback does."""
    server = _Server()
    server.failing = True
    waits: list[str] = []
    prepares: list[bool] = []

    def prepare() -> None:  # the backend's prepare finds the server gone and says so
        prepares.append(server.failing)
        if server.failing:
            watcher.down("refused")

    watcher = Watcher(
        "the test server",
        5 * MS,
        prepare=prepare,
        probe=server.probe,
        went_down=server.downs.append,
        waiting=waits.append,
    )
    watcher.start(wait_up_to=100 * MS)
    try:
        wait_for(lambda: bool(waits), "the wait to be reported")
        assert watcher.is_starting and not watcher.answered and not server.downs
        wait_for(lambda: bool(server.downs), "the outage once the start time is over")
        assert not watcher.is_starting and not watcher.answered
        server.failing = False
        wait_for(lambda: watcher.answered, "the first answer")
        wait_for(lambda: prepares[-1:] == [False], "the models prepared")
        assert not watcher.is_down
    finally:
        watcher.stop()


def test_a_cold_start_that_answers_in_time_never_goes_down() -> None:
    """The server answers within wait_up_to: no outage at all, only the wait, then prepare."""
    server = _Server()
    server.failing = True
    waits: list[str] = []
    prepared = threading.Event()

    def prepare() -> None:
        if server.failing:
            watcher.down("loading")
        else:
            prepared.set()

    watcher = Watcher(
        "the test server",
        5 * MS,
        prepare=prepare,
        probe=server.probe,
        went_down=server.downs.append,
        waiting=waits.append,
    )
    watcher.start(wait_up_to=60_000 * MS)
    try:
        wait_for(lambda: server.probes >= 2, "probes while it starts")
        server.failing = False
        wait_for(prepared.is_set, "the models prepared")
        assert watcher.answered and not watcher.is_starting and not server.downs
        assert waits and waits[0] == "loading"
    finally:
        watcher.stop()
