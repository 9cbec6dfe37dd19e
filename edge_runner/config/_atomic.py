"""The one way edge-runner writes an owner-only file: atomically, mode 0600 whatever was there.

Public as :func:`edge_runner.config.write_private_file`. The contexts file, the secrets file
store, the control plane's admin token and TLS key, the runner's local API secret and the MCP
server's token all go through it. Opening the file itself with ``O_CREAT | O_TRUNC, 0o600``
is not enough: the mode only applies to a new file, so one that already exists keeps whatever
mode it had (0644 after a copy, say) while it now holds a secret.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["PRIVATE_FILE_MODE", "write_private_file"]

PRIVATE_FILE_MODE = 0o600


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the new file has mode 0600.

    The bytes go to a temporary file in the same directory, created 0600 from the start (so the
    content is never readable by others, not even for a moment), flushed to disk, then moved over
    ``path`` with :func:`os.replace`. A reader sees the old file or the new one, never half, and
    the file at ``path`` is 0600 even when an existing one had a looser mode.

    Args:
        path: the file to write; its directory must exist.
        data: the whole new content.

    Raises:
        OSError: the file cannot be written; the temporary file is removed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            if os.name == "posix":
                # The umask can only remove bits; this makes the mode exact even under an odd one.
                os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry so the rename survives a power cut (POSIX only, best effort)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
