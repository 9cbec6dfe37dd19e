"""Write the dashboard screenshots of the README and docs/dashboard.md (SVG, made by the app
itself) to docs/.

The data is the pinned fake source of the snapshot tests (tests/fakes/dashboard.py), so the
picture is the same on every machine:

    .venv/bin/python tools/dashboard_screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_runner_tui.app import create_app  # noqa: E402
from tests.fakes.dashboard import FakeSource  # noqa: E402

SHOTS = (
    # file, key, GPUs, size
    ("dashboard.svg", "1", 2, (110, 30)),
    ("dashboard-gpu.svg", "6", 8, (160, 48)),
)


async def shoot(name: str, key: str, gpus: int, size: tuple[int, int]) -> Path:
    """One screenshot after twelve refreshes (so the charts have a shape)."""
    source = FakeSource(gpu_count=gpus)
    app = create_app(source, poll=False)
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        for _ in range(12):
            await app.poll_once()
            await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        return Path(app.save_screenshot(name, path=str(ROOT / "docs")))


def main() -> int:
    """Write every shot and say where."""
    os.environ["TZ"] = "UTC"
    time.tzset()
    for shot in SHOTS:
        print(asyncio.run(shoot(*shot)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
