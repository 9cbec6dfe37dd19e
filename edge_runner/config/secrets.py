"""Where tokens live: the OS keyring when there is a real one, else owner-only files.

:func:`secret_store` picks the backend:

- ``EDGE_RUNNER_SECRET_BACKEND=file`` forces the file store, ``=keyring`` forces the OS keyring
  (an error when none is usable), unset or ``auto`` picks the keyring when a real one exists.
- A real keyring is one that keeps secrets encrypted or in an OS vault. ``keyring``'s fail and
  null backends, a chainer with nothing real behind it, and plain-text backends
  (``keyrings.alt``, anything named ``Plaintext``) do not count.
- Entries use service ``edge-runner`` and the context name as the user name.
- Every keyring call runs in a daemon thread with a time limit, because a locked Secret Service
  can block forever. On a timeout or a backend error the store falls back to files for the rest
  of its life and logs one warning saying why (unless the keyring was forced: then it raises).

The file store keeps ``<data_dir>/secrets/<context>.token`` (0600, in a 0700 directory) and warns
once per process on first use. Secrets are never logged. On Windows there are no POSIX modes: the
file is as private as its folder's ACL (the warning says so rather than claim 0600).

Real backends by platform: macOS Keychain (``keyring.backends.macOS.Keyring``), Windows
Credential Locker (``keyring.backends.Windows.WinVaultKeyring``), Secret Service or KWallet on
Linux (``keyring.backends.SecretService.Keyring``, ``keyring.backends.libsecret.Keyring``,
``keyring.backends.kwallet.DBusKeyring``); all are accepted by the same rule, since each keeps
secrets in an OS vault. A keychain locked over ssh, or a desktop-less Linux box, ends on the file
store with the warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import keyring
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors

from edge_runner.config._filestore import FileSecrets
from edge_runner.config.paths import data_dir, private_file_note
from edge_runner.errors import ConfigError, KeyringUnavailable, SecretStoreError

__all__ = ["ENV_SECRET_BACKEND", "SERVICE_NAME", "SecretStore", "secret_store"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge-runner"
ENV_SECRET_BACKEND = "EDGE_RUNNER_SECRET_BACKEND"

_T = TypeVar("_T")
# keyring ships no type hints (mypy treats it as Any); this alias keeps signatures readable.
KeyringBackend = Any

_file_store_warned = False
_warn_lock = threading.Lock()


class SecretStore:
    """Get, set and delete one secret per context name.

    Build one with :func:`secret_store`; ``SecretStore()`` alone is the file store.

    Attributes:
        timeout: seconds each keyring call may take before the store gives up on the keyring.
    """

    def __init__(
        self,
        backend: KeyringBackend | None = None,
        *,
        secrets_dir: Path | None = None,
        timeout: float = 3.0,
        fallback: bool = True,
        chosen: bool = False,
    ) -> None:
        """Create a store.

        Args:
            backend: a usable keyring backend, or None for the file store.
            secrets_dir: the file store's directory; default ``data_dir()/secrets``.
            timeout: seconds each keyring call may take.
            fallback: on a keyring timeout or error, switch to the file store (True) or raise
                :class:`SecretStoreError` (False).
            chosen: the file store was asked for (``EDGE_RUNNER_SECRET_BACKEND=file``), so
                writing a secret to it is not worth a warning.
        """
        self._keyring = backend
        self._files = FileSecrets(
            secrets_dir if secrets_dir is not None else data_dir() / "secrets"
        )
        self._fallback = fallback
        self._chosen = chosen
        self._lock = threading.Lock()
        self.timeout = timeout

    @property
    def backend_name(self) -> str:
        """``keyring:<module.Class>`` or ``file:<directory>``: where secrets go now."""
        backend = self._keyring
        if backend is not None:
            return f"keyring:{_class_name(backend)}"
        return f"file:{self._files.directory}"

    def get(self, context_name: str) -> str | None:
        """Return the secret stored for ``context_name``, or None.

        Raises:
            SecretStoreError: the secret file is open to other users or unreadable, or a forced
                keyring failed.
        """
        backend = self._keyring
        if backend is not None:
            try:
                value: str | None = self._call(
                    backend, lambda: backend.get_password(SERVICE_NAME, context_name), "read"
                )
            except KeyringUnavailable as exc:
                self._fall_back(backend, exc)
            else:
                if value is not None:
                    return value
                # A secret saved while the keyring was unavailable sits in the file store.
                return self._files.get(context_name) if self._files.exists(context_name) else None
        # Reading is silent: the warning belongs to the moment a secret is written to a file.
        return self._files.get(context_name)

    def set(self, context_name: str, secret: str) -> None:
        """Store ``secret`` for ``context_name``, replacing any earlier one.

        Raises:
            SecretStoreError: the secret cannot be stored.
        """
        if not secret:
            raise SecretStoreError(f"Refusing to store an empty secret for {context_name!r}.")
        backend = self._keyring
        if backend is not None:
            try:
                self._call(
                    backend,
                    lambda: backend.set_password(SERVICE_NAME, context_name, secret),
                    "write",
                )
            except KeyringUnavailable as exc:
                self._fall_back(backend, exc)
            else:
                # Drop a copy left by an earlier fallback so no stale token stays on disk.
                self._files.delete(context_name)
                logger.debug("stored the secret for %r in %s", context_name, self.backend_name)
                return
        if not self._chosen:
            _warn_file_store(self._files.directory)
        self._files.set(context_name, secret)
        logger.debug("stored the secret for %r in %s", context_name, self.backend_name)

    def delete(self, context_name: str) -> None:
        """Forget the secret for ``context_name`` (keyring entry and file); missing is fine.

        Raises:
            SecretStoreError: a secret exists but cannot be removed.
        """
        backend = self._keyring
        if backend is not None:
            try:
                self._call(backend, lambda: _delete_quietly(backend, context_name), "delete")
            except KeyringUnavailable as exc:
                self._fall_back(backend, exc)
        self._files.delete(context_name)

    def _call(self, backend: KeyringBackend, fn: Callable[[], _T], op: str) -> _T:
        return _time_boxed(fn, self.timeout, f"the OS keyring ({_class_name(backend)})", op)

    def _fall_back(self, backend: KeyringBackend, exc: KeyringUnavailable) -> None:
        """Switch to the file store after a keyring failure, or raise when that is not allowed."""
        if not self._fallback:
            raise SecretStoreError(
                f"{exc}. {ENV_SECRET_BACKEND}=keyring forbids the file store; unlock the "
                f"keyring or unset {ENV_SECRET_BACKEND}."
            ) from exc
        with self._lock:
            if self._keyring is not backend:
                return  # another thread already switched and warned
            self._keyring = None
        _warn_file_store(self._files.directory, reason=str(exc), force=True)


def secret_store(*, timeout: float = 3.0) -> SecretStore:
    """Return the secret store for this machine: a real OS keyring if usable, else files.

    Args:
        timeout: seconds each keyring call (detection included) may take.

    Raises:
        ConfigError: ``EDGE_RUNNER_SECRET_BACKEND`` has an unknown value.
        SecretStoreError: ``EDGE_RUNNER_SECRET_BACKEND=keyring`` but no usable keyring answers.
    """
    raw = os.environ.get(ENV_SECRET_BACKEND, "")
    mode = raw.strip().lower() or "auto"
    if mode not in ("auto", "keyring", "file"):
        raise ConfigError(f"{ENV_SECRET_BACKEND}={raw!r} is not one of: auto, keyring, file.")
    if mode == "file":
        return SecretStore(timeout=timeout, chosen=True)
    try:
        backend, problem = _time_boxed(_detect, timeout, "the OS keyring", "detection")
    except KeyringUnavailable as exc:
        if mode == "keyring":
            raise SecretStoreError(
                f"{exc}. Unlock the keyring, or unset {ENV_SECRET_BACKEND} to use the file store."
            ) from exc
        store = SecretStore(timeout=timeout)
        _warn_file_store(store._files.directory, reason=str(exc), force=True)
        return store
    if backend is not None:
        logger.debug("secrets go to keyring backend %s", _class_name(backend))
        return SecretStore(backend, timeout=timeout, fallback=mode == "auto")
    if mode == "keyring":
        raise SecretStoreError(
            f"{ENV_SECRET_BACKEND}=keyring, but {problem}. Install or unlock an OS keyring "
            f"(Secret Service or KWallet, macOS Keychain, Windows Credential Locker), or unset "
            f"{ENV_SECRET_BACKEND} to use the file store."
        )
    logger.debug("not using the OS keyring: %s", problem)
    return SecretStore(timeout=timeout)


def _detect() -> tuple[KeyringBackend | None, str]:
    """Return ``(usable backend, "")`` or ``(None, why not)`` for keyring's current backend."""
    backend = keyring.get_keyring()
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        # Use the best real backend directly: the chainer would also read from (and could write
        # to) plain-text backends that sit behind it.
        chained = list(backend.backends)
        for candidate in chained:
            if _unusable_reason(candidate) is None:
                return candidate, ""
        names = ", ".join(_class_name(b) for b in chained) or "nothing"
        return None, f"the keyring chainer has no usable backend (it chains {names})"
    problem = _unusable_reason(backend)
    return (None, problem) if problem else (backend, "")


def _unusable_reason(backend: KeyringBackend) -> str | None:
    """Say why ``backend`` cannot hold our secrets, or return None when it can."""
    name = _class_name(backend)
    if isinstance(backend, keyring.backends.fail.Keyring | keyring.backends.null.Keyring):
        return f"no OS keyring backend was found (keyring chose {name})"
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        return "a nested keyring chainer is not supported"
    module = type(backend).__module__
    if (
        "plaintext" in name.lower()
        or module == "keyrings.alt"
        or module.startswith("keyrings.alt.")
    ):
        return f"{name} stores secrets in plain text"
    return None


def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _delete_quietly(backend: KeyringBackend, context_name: str) -> None:
    # Nothing stored is fine: deleting is idempotent.
    with contextlib.suppress(keyring.errors.PasswordDeleteError):
        backend.delete_password(SERVICE_NAME, context_name)


def _time_boxed(fn: Callable[[], _T], timeout: float, what: str, op: str) -> _T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds for it.

    A hung call is abandoned (the daemon thread cannot keep the process alive); the caller
    stops using that backend so no more threads pile up behind it.

    Raises:
        KeyringUnavailable: ``fn`` timed out or raised; chained to the original error.
    """
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except Exception as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="edge-runner-keyring", daemon=True).start()
    if not done.wait(timeout):
        raise KeyringUnavailable(
            f"{what} did not answer a {op} request within {timeout:g} s (is it locked?)"
        )
    error = outcome.get("error")
    if error is not None:
        raise KeyringUnavailable(
            f"{what} failed a {op} request: {type(error).__name__}: {error}"
        ) from error
    value: _T = outcome["value"]
    return value


def _warn_file_store(directory: Path, *, reason: str | None = None, force: bool = False) -> None:
    """Log, once per process, that secrets go to files; ``force`` logs a specific reason anyway."""
    global _file_store_warned
    with _warn_lock:
        if _file_store_warned and not force:
            return
        _file_store_warned = True
    why = reason[:1].upper() + reason[1:] if reason else "No OS keyring backend is available"
    logger.warning("%s; storing secrets in %s (%s).", why, directory, private_file_note())
