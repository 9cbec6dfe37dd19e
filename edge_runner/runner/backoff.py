"""Reconnect policy: full-jitter exponential backoff that never gives up.

``delay = uniform(0, min(cap, initial * factor ** n))`` — the AWS "full jitter" rule, so a fleet
of runners that lost their control plane at once does not come back at once. The generator is
replaced by a fresh one after every successful connection, which resets it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff"]


def backoff(
    initial: float = 0.5,
    cap: float = 10.0,
    factor: float = 2.0,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield reconnect delays in seconds, forever."""
    draw = (rng or random.Random()).uniform
    ceiling = initial
    while True:
        yield draw(0, ceiling)
        ceiling = min(cap, ceiling * factor)
