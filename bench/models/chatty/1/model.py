"""A model that logs at a steady rate, for ``bench/dashboard.py``'s log flood."""

from __future__ import annotations

import logging
import time

from edge_runner import ModelClass

logger = logging.getLogger("bench.chatty")


class Chatty(ModelClass):
    """Logs lines."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """Return the text (a cheap call for the rates)."""
        return text

    @ModelClass.method
    def chatter(self, rate: float = 200.0, seconds: float = 60.0) -> int:
        """Log ``rate`` INFO lines a second for ``seconds`` or until cancelled; return the count."""
        start = time.monotonic()
        sent = 0
        while not self.cancelled():
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
            while sent < due:
                logger.info(
                    "line %d of the flood: the quick brown fox jumps over the lazy dog", sent
                )
                sent += 1
            time.sleep(min(0.005, 1 / rate))
        return sent
