"""One control plane per data dir: a lock the OS drops when its holder dies.

Two control planes on one SQLite registry would each believe they own every runner (the second
marks the first's live runners disconnected at start) and would fight over the ``local``
context. :class:`DataDirLock` takes an exclusive lock on ``<data dir>/control.lock`` (``flock``
on POSIX, ``msvcrt.locking`` on Windows, through :func:`edge_runner._platform.try_lock`): held
for the control plane's life, released by the OS however the process ends (``kill -9``
included), so there is never a stale lock to clean up. Who holds it — pid and, once bound,
the API address — is written to ``control.json`` beside it (a separate file: Windows' byte
locks forbid reading a locked file), so the second process can name the first, and ``up`` can
join the running control plane instead of starting another.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any

from edge_runner._platform import try_lock
from edge_runner.errors import ConfigError

__all__ = ["DataDirBusy", "DataDirLock", "running_control_plane"]

LOCK_FILE = "control.lock"
INFO_FILE = "control.json"


class DataDirBusy(ConfigError):
    """Another live control plane holds the data dir.

    Attributes:
        holder: what it published about itself (``pid``, ``api_base``, ...), possibly empty.
    """

    def __init__(self, data_dir: Path, holder: dict[str, Any]) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"pid {holder['pid']}" if holder.get("pid") else "another process"
        where = f", serving {holder['api_base']}" if holder.get("api_base") else ", starting up"
        super().__init__(
            f"another control plane ({who}{where}) is using the data dir {data_dir}; "
            "stop it first, or give this one a data dir of its own with --data-dir DIR "
            "(or EDGE_RUNNER_HOME for a whole separate home)"
        )


class DataDirLock:
    """The exclusive claim of one control plane on its data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DataDirBusy` naming the holder.

        Raises:
            DataDirBusy: another live process holds it.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = (self.data_dir / LOCK_FILE).open("a")
        if not try_lock(lock):
            lock.close()
            raise DataDirBusy(self.data_dir, _read_info(self.data_dir))
        self._file = lock
        self.publish({})

    def publish(self, info: dict[str, Any]) -> None:
        """Say who holds the lock (and, once known, where it serves)."""
        if self._file is None:
            return
        doc = {"pid": os.getpid(), "since": time.time(), **info}
        path = self.data_dir / INFO_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc) + "\n")
        os.replace(tmp, path)

    def release(self) -> None:
        """Drop the lock (closing the file releases it) and the holder's note."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / INFO_FILE).unlink()
        self._file.close()
        self._file = None


def running_control_plane(data_dir: Path) -> dict[str, Any] | None:
    """What the live control plane on ``data_dir`` published, or None when there is none.

    A probe: the lock is taken and released at once when free.
    """
    path = data_dir / LOCK_FILE
    if not path.exists():
        return None
    with path.open("a") as lock:
        if try_lock(lock):
            return None  # free (closing the file releases it)
    return _read_info(data_dir)


def _read_info(data_dir: Path) -> dict[str, Any]:
    try:
        doc = json.loads((data_dir / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
