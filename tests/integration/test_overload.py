"""Back-pressure: under 10x overload the control plane sheds load with 429 and stays healthy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.conftest import MS, SLOW_MODEL, Stack, write_model


def test_tenfold_overload_sheds_with_429_and_health_stays_up(stack: Stack, tmp_path: Path) -> None:
    """Past pool + queue, requests get 429 at once; /healthz answers throughout."""
    stack.stop_control()
    stack.start_control(max_queue=8)
    stack.start_runner(write_model(tmp_path, "slow", SLOW_MODEL), pool_size=2)
    assert stack.plane is not None and stack.plane.state is not None
    dispatcher = stack.plane.state.dispatcher
    capacity = 2 + 8
    deepest = 0
    health_worst = 0.0

    async def flood() -> list[int]:
        nonlocal deepest, health_worst
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(headers=stack.headers, timeout=30, limits=limits) as client:
            url = f"{stack.api_base}/v2/models/slow/wait"
            calls = [
                asyncio.ensure_future(client.post(url, json={"seconds": 200 * MS}))
                for _ in range(10 * capacity)
            ]
            while not all(c.done() for c in calls):
                started = time.monotonic()
                health = await client.get(f"{stack.api_base}/healthz")
                assert health.status_code == 200
                health_worst = max(health_worst, time.monotonic() - started)
                deepest = max(deepest, dispatcher.queued("admin", "slow"))
                await asyncio.sleep(10 * MS)
            return [c.result().status_code for c in calls]

    statuses = asyncio.run(flood())
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= capacity
    assert statuses.count(429) > 0
    assert deepest <= 8
    assert health_worst < 2000 * MS
    assert dispatcher.tasks == {}  # nothing left behind once the flood is over
