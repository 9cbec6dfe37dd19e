"""The thread that keeps a server-backed backend's models' readiness true.

Backends that serve through a local server (Ollama, an OpenAI-compatible upstream) run one
:class:`Watcher`: it prepares the models once, then probes the server every ``interval``
seconds. The first failed probe calls ``went_down`` (the backend marks its models UNAVAILABLE);
the first probe that answers after that calls ``came_back`` (it prepares them again). A call
that could not reach the server calls :meth:`Watcher.wake`, so the outage is confirmed at once
instead of at the next tick. An outage is logged once when it starts and once when it ends.

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

__all__ = ["Watcher"]

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.what = what
        self.interval = interval
        self._prepare = prepare
        self._probe = probe
        self._went_down = went_down
        self._busy = busy
        self._guard = guard if guard is not None else contextlib.nullcontext()
        self._down_since: float | None = None
        self._wake = threading.Event()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {what}", daemon=True)

    @property
    def is_down(self) -> bool:
        """Whether an outage is in progress."""
        return self._down_since is not None

    def start(self) -> None:
        """Start the thread."""
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
        """Record an outage (once) and let the backend mark its models."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "%s is not answering (%s); its models are unavailable", self.what, reason
            )
        self._went_down(reason)

    def _run(self) -> None:
        self._prepare()
        while not self.stopped.is_set():
            woken = self._wake.wait(self.interval)
            self._wake.clear()
            if self.stopped.is_set():
                return
            try:
                with self._guard:
                    if not woken and self._down_since is None and self._busy():
                        continue  # calls in flight show it answering; a probe could cut them
                    self._probe()
            except Exception as exc:  # whatever the probe raised, the server is not usable
                self.down(describe_http_error(exc))
                continue
            if self._down_since is not None:
                logger.info(
                    "%s answers again after %.1f s", self.what, time.monotonic() - self._down_since
                )
                self._down_since = None
                self._prepare()
