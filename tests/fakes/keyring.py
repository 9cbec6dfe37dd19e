"""FAKE OS keyrings: no Secret Service, Keychain or Credential Locker runs on these machines.

keyring backends that behave like a working keyring (entries in a dict) and like a locked one
(every call raises ``KeyringLocked``), for the secret store's and the doctor's tests. Both set
``viable = False`` so keyring never picks them by itself.
"""

from __future__ import annotations

import keyring.errors
from keyring.backend import KeyringBackend

__all__ = ["LockedKeyring", "MemoryKeyring"]


class MemoryKeyring(KeyringBackend):
    """A working keyring that keeps entries in a dict."""

    priority = 1
    viable = False

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


class LockedKeyring(MemoryKeyring):
    """A keyring whose every call raises a keyring error, like a locked collection."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("collection is locked")
