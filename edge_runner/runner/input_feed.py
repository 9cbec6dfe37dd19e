"""The input of a stream-in task: fed on the event loop, read by the model on its worker thread.

The control plane sends a stream-in task's input items (``InputChunk``) only below the input
credit the runner granted, so the feed holds at most one window of items. The model reads the
feed as an ``Iterator[bytes]``: ``next()`` blocks for the next item, and the iterator ends at
``InputEnd`` or, at once, when the task is cancelled. Each item read may extend the credit, as
the control plane does for output: once no more than half a window of granted items is left
unread, the credit grows to ``read + window``. A model slower than its input therefore holds
the client back instead of growing a buffer.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator

__all__ = ["DEFAULT_INPUT_WINDOW", "InputFeed"]

#: input items a task may have in flight when the control plane sets no stream window
DEFAULT_INPUT_WINDOW = 64


class InputFeed(Iterator[bytes]):
    """One stream-in task's input items, in order; thread-safe.

    Args:
        window: how many items may be in flight (granted but not yet read); at least 1.
        cancel: the task's cancel event; once set, the iterator ends (pair it with
            :meth:`wake` as a cancel callback so a blocked reader notices at once).
        grant: called (on the reading thread, outside the lock) with the new absolute credit
            each time it grows; the first grant, ``window``, is :attr:`granted` at the start and
            is the caller's to send.
    """

    #: how often a waiting reader looks at its cancel event even if nobody wakes it
    _POLL_S = 1.0

    def __init__(self, window: int, cancel: threading.Event, grant: Callable[[int], None]) -> None:
        self.window = max(1, window)
        self._cancel = cancel
        self._grant = grant
        self._cond = threading.Condition()
        self._items: collections.deque[bytes] = collections.deque()
        self._ended = False
        #: items received so far (from the tunnel)
        self.received = 0
        #: items the model has read so far
        self.consumed = 0
        #: the input credit: items numbered below it may be sent
        self.granted = self.window

    @property
    def ended(self) -> bool:
        """The input's end arrived (items may still wait to be read)."""
        return self._ended

    # -- the event loop's side ----------------------------------------------------------------

    def put(self, payload: bytes) -> None:
        """Add the next input item (the session has checked its order and credit)."""
        with self._cond:
            if self._ended:
                return
            self._items.append(payload)
            self.received += 1
            self._cond.notify_all()

    def end(self) -> None:
        """The input ended: the reader gets the items left, then StopIteration."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake a waiting reader (its task was cancelled)."""
        with self._cond:
            self._cond.notify_all()

    # -- the worker's side --------------------------------------------------------------------

    def __iter__(self) -> InputFeed:
        return self

    def __next__(self) -> bytes:
        """The next item; blocks until it arrives.

        Raises:
            StopIteration: the input ended, or the task was cancelled.
        """
        with self._cond:
            while not self._items and not self._ended and not self._cancel.is_set():
                self._cond.wait(self._POLL_S)
            if self._cancel.is_set() or not self._items:
                raise StopIteration
            item = self._items.popleft()
            self.consumed += 1
            upto = None
            if not self._ended and self.granted - self.consumed <= self.window // 2:
                upto = self.granted = self.consumed + self.window
        if upto is not None:
            self._grant(upto)
        return item
