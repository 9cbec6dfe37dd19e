"""A runner id that persists across restarts, and that two runners on one machine never share.

The id is kept in ``<data dir>/runners/<key>.id``, where the key derives from the control plane
address and the model folder. A runner holds an ``flock`` on ``<runtime dir>/<id>.lock``
while it runs; a second runner for the same folder finds the lock taken and uses the next slot
(``<key>-2.id``, ...), so several runners can share a machine.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import IO

from edge_runner._platform import try_lock
from edge_runner.config.paths import runner_file

__all__ = ["RunnerIdentity", "claim_runner_id"]


class RunnerIdentity:
    """A claimed runner id; keep it referenced (and open) while the runner runs."""

    def __init__(self, runner_id: str, lock: IO[str]) -> None:
        self.runner_id = runner_id
        self._lock = lock

    def release(self) -> None:
        """Drop the lock (the process exiting does the same)."""
        self._lock.close()


def claim_runner_id(
    api_base: str, source: str, data_dir: Path, runtime_dir: Path
) -> RunnerIdentity:
    """Return this runner's persistent id, locked for this process.

    Args:
        api_base: the control plane the runner connects to.
        source: what the runner serves (the model folder's absolute path, or a backend name).
        data_dir: where id files live.
        runtime_dir: where lock files live.
    """
    key = hashlib.sha256(f"{api_base}\n{source}".encode()).hexdigest()[:16]
    ids = data_dir / "runners"
    ids.mkdir(parents=True, exist_ok=True, mode=0o700)
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    slot = 1
    while True:
        id_file = ids / (key if slot == 1 else f"{key}-{slot}")
        id_file = id_file.with_suffix(".id")
        if id_file.exists():
            runner_id = id_file.read_text().strip()
        else:
            runner_id = f"runner-{uuid.uuid4().hex[:12]}"
            tmp = id_file.with_suffix(".tmp")
            tmp.write_text(runner_id + "\n")
            os.replace(tmp, id_file)
        lock = runner_file(runtime_dir, runner_id, "lock").open("w")
        if not try_lock(lock):
            lock.close()
            slot += 1
            continue
        return RunnerIdentity(runner_id, lock)
