"""A stream-in task's input feed: the loop feeds it, a worker reads it, credit follows reading."""

from __future__ import annotations

import functools
import threading

from edge_runner.backends.base import CancelEvent
from edge_runner.runner.input_feed import InputFeed
from tests.conftest import MS, wait_for


def _reader(feed: InputFeed, got: list[bytes]) -> threading.Thread:
    def run() -> None:
        got.extend(feed)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _below(n: int, upto: list[int]) -> bool:
    return n < upto[0]


def test_a_read_blocks_until_an_item_arrives_and_the_feed_ends_at_the_input_end() -> None:
    """The reader waits for each item and stops once the end arrived and the items are read."""
    feed, got = InputFeed(4, CancelEvent(), lambda upto: None), list[bytes]()
    thread = _reader(feed, got)
    feed.put(b'"a"')
    wait_for(lambda: got == [b'"a"'], "the first item")
    assert thread.is_alive()  # waiting for more
    feed.put(b'"b"')
    feed.end()
    thread.join(5_000 * MS)
    assert not thread.is_alive() and got == [b'"a"', b'"b"']
    assert feed.received == feed.consumed == 2 and feed.ended
    feed.put(b'"late"')  # after the end: dropped
    assert feed.received == 2


def test_a_cancel_ends_the_feed_at_once_even_with_items_waiting() -> None:
    """A cancel wakes a waiting reader at once (before the poll interval), and items still
    buffered are not read after it."""
    cancel = CancelEvent()
    feed, got = InputFeed(4, cancel, lambda upto: None), list[bytes]()
    cancel.on_set(feed.wake)
    thread = _reader(feed, got)
    wait_for(lambda: thread.is_alive(), "the reader")
    cancel.set()
    thread.join(InputFeed._POLL_S / 2)
    assert not thread.is_alive() and got == []
    feed.put(b'"x"')
    assert list(feed) == []


def test_credit_stays_within_one_window_of_what_was_read() -> None:
    """The credit starts at the window, grows to read + window once half a window is left
    unread, and never runs more than one window ahead of the reader."""
    grants: list[int] = []
    feed = InputFeed(4, CancelEvent(), grants.append)
    assert feed.granted == 4 and grants == []  # the first grant is the caller's to send
    for n in range(4):
        feed.put(str(n).encode())
    reads = []
    for _ in range(4):
        reads.append(next(feed))
        assert feed.granted - feed.consumed <= feed.window
    assert reads == [b"0", b"1", b"2", b"3"]
    assert grants == [6, 8]  # after reading 2 (2 left unread), then after reading 4


def test_many_items_arrive_in_order_under_credit() -> None:
    """A sender that respects the credit and a slower reader move 1000 items in order, with
    never more than one window buffered."""
    cancel = CancelEvent()
    credit = threading.Condition()
    upto = [0]

    def grant(n: int) -> None:
        with credit:
            upto[0] = n
            credit.notify_all()

    feed, got = InputFeed(8, cancel, grant), list[bytes]()
    upto[0] = feed.granted
    most_buffered = [0]
    thread = _reader(feed, got)
    for n in range(1000):
        with credit:
            assert credit.wait_for(functools.partial(_below, n, upto), 5_000 * MS), n
        feed.put(str(n).encode())
        most_buffered[0] = max(most_buffered[0], feed.received - feed.consumed)
    feed.end()
    thread.join(5_000 * MS)
    assert got == [str(n).encode() for n in range(1000)]
    assert most_buffered[0] <= 8
