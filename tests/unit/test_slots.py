"""How a runner's pool is shared among its models (per-model credit)."""

from __future__ import annotations

import pytest

from edge_runner.runner.slots import pool_warning, split_pool


@pytest.mark.parametrize(
    ("pool", "caps", "shares"),
    [
        (32, {"m": None}, {"m": 32}),
        (32, {"a": 1, "b": 1}, {"a": 1, "b": 1}),
        (4, {"a": 4, "b": 4}, {"a": 2, "b": 2}),
        (5, {"a": 4, "b": 4}, {"a": 3, "b": 2}),
        (6, {"a": 1, "b": 8}, {"a": 1, "b": 5}),
        (2, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}),
    ],
)
def test_split_pool(pool: int, caps: dict[str, int | None], shares: dict[str, int]) -> None:
    """Round robin up to each cap; every model gets a slot; nothing above the pool otherwise."""
    assert split_pool(pool, caps) == shares


def test_pool_warnings() -> None:
    """A pool larger than the backend's parallelism, or smaller than the model count, is named."""
    more = pool_warning(32, {"a": 1, "b": 1}, "OLLAMA_NUM_PARALLEL=1")
    assert more is not None and "--pool-size 32" in more and "2 slots" in more
    assert "Raise OLLAMA_NUM_PARALLEL" in more
    fewer = pool_warning(1, {"a": 1, "b": 1}, "OLLAMA_NUM_PARALLEL=1")
    assert fewer is not None and "up to 2 tasks" in fewer
    assert pool_warning(2, {"a": 1, "b": 1}, "OLLAMA_NUM_PARALLEL=1") is None
    assert pool_warning(32, {"m": None}, "") is None
