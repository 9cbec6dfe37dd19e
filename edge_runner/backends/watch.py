"""The thread that keeps a server-backed backend's models' readiness true.

Backends that serve through a local server (Ollama, an OpenAI-compatible upstream) run one
:class:`Watcher`: it prepares the models once, then probes the server every ``interval``
seconds. The first failed probe calls ``went_down`` (the backend marks its models UNAVAILABLE);
the first probe that answers after that calls ``came_back`` (it prepares them again). A call
that could not reach the server calls :meth:`Watcher.wake`, so the outage is confirmed at once
instead of at the next tick. An outage is logged once when it starts and once when it ends.

A server that has not answered yet (a cold start: vLLM does not listen until its model is
loaded, llama.cpp's ``llama-server`` answers 503 while it loads) is not an outage: started with
``wait_up_to`` seconds, the watcher calls ``waiting`` instead of ``went_down`` until the server
first answers (the backend shows its models LOADING), logged as a wait (:class:`StartWait`).
When ``wait_up_to`` passes with no answer, the outage starts as any other: ``went_down``, and
the first answer after that heals it.

A backend may say it is ``busy`` (calls in flight): then the periodic probe is skipped, since
those calls show the server answering, and a probe can hurt (llama.cpp's Python server stops
the answer it is generating whenever another request arrives). The check and the probe run
holding the backend's ``guard``, the lock its calls take to count themselves in, so no call
starts during a probe. A call that fails still wakes the watcher, and that probe always runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from edge_runner._http import describe_http_error
from edge_runner.errors import EdgeRunnerError

__all__ = ["StartWait", "Watcher"]

logger = logging.getLogger(__name__)

#: while a server is starting, how often "still waiting" is logged
_WAIT_LOG_EVERY_S = 10.0


class StartWait:
    """How long to wait for a server that has not answered yet, and what to log meanwhile.

    Logged once when the wait starts ("waiting up to 120 s for ... (reason); hint"), as a
    warning: a person must see it even where only warnings are shown (``up``'s runner, without
    ``--verbose``), since a server never started looks the same. Then at INFO at most every
    10 s, so a slow start shows in the log without flooding it.

    Args:
        what: the server, for logs.
        timeout: seconds to wait in all.
        hint: what to do if it never answers (how to start it).
    """

    def __init__(self, what: str, timeout: float, hint: str) -> None:
        self.what = what
        self.timeout = timeout
        self.hint = hint
        self.started = time.monotonic()
        self._logged_at: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds waited so far."""
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        """Seconds left (0 when the wait is over)."""
        return max(0.0, self.timeout - self.elapsed)

    @property
    def over(self) -> bool:
        """Whether ``timeout`` has passed."""
        return self.elapsed >= self.timeout

    def note(self, reason: str) -> None:
        """The server did not answer (``reason``): log it, once and then every ~10 s."""
        now = time.monotonic()
        if self._logged_at is None:
            logger.warning(
                "waiting up to %g s for %s (%s); %s", self.timeout, self.what, reason, self.hint
            )
        elif now - self._logged_at >= _WAIT_LOG_EVERY_S:
            logger.info(
                "still waiting for %s after %.0f s (%s); %.0f s left",
                self.what,
                self.elapsed,
                reason,
                self.remaining,
            )
        else:
            return
        self._logged_at = now


class Watcher:
    """Prepare, then probe forever (until :meth:`stop`), in a daemon thread.

    Args:
        what: the server, for logs ("Ollama at http://127.0.0.1:11434").
        interval: seconds between probes.
        prepare: runs first, and again after an outage; it calls :meth:`down` itself when it
            finds the server gone.
        probe: raises (anything) when the server does not answer.
        went_down: called with the reason when an outage starts.
        busy: whether calls are in flight now (the periodic probe is skipped then).
        guard: held while ``busy`` is asked and the probe runs (calls take it to start).
        waiting: called with the reason while a cold start waits for the first answer (see
            :meth:`start`); default: ``went_down``.
        hint: what to do when a cold start's server never answers (for the log).
    """

    def __init__(
        self,
        what: str,
        interval: float,
        *,
        prepare: Callable[[], None],
        probe: Callable[[], object],
        went_down: Callable[[str], None],
        busy: Callable[[], bool] = lambda: False,
        guard: AbstractContextManager[object] | None = None,
        waiting: Callable[[str], None] | None = None,
        hint: str = "",
    ) -> None:
        self.what = what
        self.interval = interval
        self._prepare = prepare
        self._probe = probe
        self._went_down = went_down
        self._busy = busy
        self._guard = guard if guard is not None else contextlib.nullcontext()
        self._waiting = waiting if waiting is not None else went_down
        self._hint = hint
        self._down_since: float | None = None
        #: set while a cold start waits for the server's first answer
        self._starting: StartWait | None = None
        self._answered = True  # False from a cold start until the server first answers
        self._wake = threading.Event()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {what}", daemon=True)

    @property
    def is_down(self) -> bool:
        """Whether an outage is in progress."""
        return self._down_since is not None

    @property
    def is_starting(self) -> bool:
        """Whether a cold start is still waiting for the server's first answer."""
        return self._starting is not None

    @property
    def answered(self) -> bool:
        """Whether the server has answered since the watch started (False during a cold start,
        and after it until the first answer)."""
        return self._answered

    def start(self, wait_up_to: float = 0.0) -> None:
        """Start the thread.

        Args:
            wait_up_to: the server has not answered yet: for up to this many seconds, a
                server that does not answer is starting (``waiting``), not down.
        """
        if wait_up_to > 0:
            self._starting = StartWait(self.what, wait_up_to, self._hint)
            self._down_since = self._starting.started  # the first answer prepares again
            self._answered = False
        self._thread.start()

    def wake(self) -> None:
        """Probe now (a call just failed to reach the server)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop probing and wait for the thread."""
        self.stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def down(self, reason: str) -> None:
        """Record an outage (once) and let the backend mark its models; during a cold start,
        record the wait instead (until it is over: then the outage starts)."""
        starting = self._starting
        if starting is not None and not starting.over:
            starting.note(reason)
            self._waiting(reason)
            return
        if starting is not None:
            self._starting = None
            logger.warning(
                "%s did not answer within %g s (%s); its models are unavailable until it does",
                self.what,
                starting.timeout,
                reason,
            )
        elif self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "%s is not answering (%s); its models are unavailable", self.what, reason
            )
        self._went_down(reason)

    def _run(self) -> None:
        self._prepare()
        while not self.stopped.is_set():
            starting = self._starting
            # A cold start's end is a change of state (LOADING to UNAVAILABLE): probe then.
            wait = self.interval if starting is None else min(self.interval, starting.remaining)
            woken = self._wake.wait(wait)
            self._wake.clear()
            if self.stopped.is_set():
                return
            try:
                with self._guard:
                    if not woken and self._down_since is None and self._busy():
                        continue  # calls in flight show it answering; a probe could cut them
                    self._probe()
            except EdgeRunnerError as exc:  # the backend's own words for it
                self.down(str(exc))
                continue
            except Exception as exc:  # whatever the probe raised, the server is not usable
                self.down(describe_http_error(exc))
                continue
            if self._down_since is not None:
                took = time.monotonic() - self._down_since
                if not self._answered:
                    logger.info("%s answers, %.1f s after it was first tried", self.what, took)
                else:
                    logger.info("%s answers again after %.1f s", self.what, took)
                self._starting = None
                self._answered = True
                self._down_since = None
                self._prepare()
