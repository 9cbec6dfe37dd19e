"""The secrets file store: one owner-only file per context, used when no OS keyring exists."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import stat
from pathlib import Path

from edge_runner.config._atomic import PRIVATE_FILE_MODE, write_private_file
from edge_runner.config.paths import ensure_private_dir
from edge_runner.errors import ConfigError, SecretStoreError

__all__ = ["FileSecrets", "secret_file_name"]

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def secret_file_name(context_name: str) -> str:
    """Return the file name that holds ``context_name``'s secret.

    Names made of letters, digits, ``.``, ``_`` and ``-`` map to ``<name>.token``. Any other
    name is sanitised and gets a short hash of the original, so two different names never share
    a file (``a/b`` and ``a_b`` differ) and no name can reach outside the directory.
    """
    if _SAFE_NAME.fullmatch(context_name):
        return f"{context_name}.token"
    digest = hashlib.sha256(context_name.encode("utf-8")).hexdigest()[:12]
    cleaned = _UNSAFE_CHARS.sub("_", context_name)[:64].lstrip(".") or "context"
    return f"{cleaned}-{digest}.token"


class FileSecrets:
    """Secrets as 0600 files in a 0700 directory.

    Attributes:
        directory: where the files live.
    """

    def __init__(self, directory: Path) -> None:
        """Use ``directory`` (created on first write, tightened to 0700 on every use)."""
        self.directory = directory

    def path_for(self, context_name: str) -> Path:
        """Return the file that holds ``context_name``'s secret."""
        return self.directory / secret_file_name(context_name)

    def exists(self, context_name: str) -> bool:
        """Tell whether a secret file exists for ``context_name`` (reads nothing)."""
        return self.path_for(context_name).is_file()

    def get(self, context_name: str) -> str | None:
        """Return the stored secret, or None when there is none.

        Raises:
            SecretStoreError: the file is open to other users (refused, with the ``chmod`` that
                fixes it), or cannot be read.
        """
        if not self.directory.exists():
            return None
        self._tighten_dir()
        path = self.path_for(context_name)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SecretStoreError(
                    f"{path} is a symbolic link; refusing to read a secret through it. "
                    f"Remove it and log in again."
                ) from exc
            raise SecretStoreError(f"Cannot read the secret file {path}: {exc}.") from exc
        with os.fdopen(fd, "rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            if os.name == "posix" and mode & 0o077:
                raise SecretStoreError(_loose_file_message(path, mode))
            data = fh.read()
        try:
            secret = data.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise SecretStoreError(f"The secret file {path} is not UTF-8 text.") from exc
        return secret or None

    def set(self, context_name: str, secret: str) -> None:
        """Store ``secret`` atomically in a 0600 file.

        Raises:
            SecretStoreError: the directory or file cannot be written.
        """
        self._tighten_dir()
        path = self.path_for(context_name)
        self._tighten_existing(path)
        try:
            write_private_file(path, secret.encode("utf-8"))
        except OSError as exc:
            raise SecretStoreError(f"Cannot write the secret file {path}: {exc}.") from exc

    def delete(self, context_name: str) -> None:
        """Remove the stored secret; a missing one is not an error.

        Raises:
            SecretStoreError: the file exists but cannot be removed.
        """
        path = self.path_for(context_name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise SecretStoreError(f"Cannot remove the secret file {path}: {exc}.") from exc

    def _tighten_dir(self) -> None:
        try:
            ensure_private_dir(self.directory)
        except ConfigError as exc:
            raise SecretStoreError(str(exc)) from exc

    def _tighten_existing(self, path: Path) -> None:
        """Narrow an existing file to 0600 before it is replaced (the old content was exposed)."""
        if os.name != "posix":
            return
        with contextlib.suppress(FileNotFoundError):
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISREG(st.st_mode) and mode & 0o077:
                path.chmod(PRIVATE_FILE_MODE)
                logger.warning(
                    "%s had mode %04o (open to other users); set it to 0600 before replacing it",
                    path,
                    mode,
                )


def _loose_file_message(path: Path, mode: int) -> str:
    if mode & 0o044:
        return (
            f"{path} is readable by other users; fix it with `chmod 600 {path}` "
            f"(its mode is {mode:04o}). Consider revoking that token, since others could read it."
        )
    return (
        f"{path} is writable by other users; fix it with `chmod 600 {path}` "
        f"(its mode is {mode:04o})."
    )
