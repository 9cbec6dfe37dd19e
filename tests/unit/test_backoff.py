"""The reconnect backoff policy."""

from __future__ import annotations

import itertools
import random

from edge_runner.runner.backoff import backoff


def test_full_jitter_within_growing_ceiling() -> None:
    """Each delay is uniform in [0, min(cap, initial * 2**n)]."""
    delays = list(itertools.islice(backoff(0.5, 10.0, rng=random.Random(1)), 12))
    ceilings = [min(10.0, 0.5 * 2**n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[6:]) > 5.0  # reaches the cap region


def test_never_exceeds_cap_and_never_ends() -> None:
    """The generator is infinite and capped."""
    delays = list(itertools.islice(backoff(0.5, 10.0, rng=random.Random(2)), 500))
    assert len(delays) == 500 and max(delays) <= 10.0


def test_jitter_spreads_a_fleet() -> None:
    """Runners with different random streams do not retry in lockstep."""
    firsts = {round(next(backoff(rng=random.Random(seed))), 6) for seed in range(50)}
    assert len(firsts) == 50
