"""Token checks with an in-memory cache, and the first-start bootstrap of the admin token."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edge_runner.config import write_private_file
from edge_runner.config.paths import private_file_note
from edge_runner.control.registry import ADMIN_SCOPES, Registry, TokenInfo, hash_token

__all__ = ["ADMIN_USER", "Authenticator", "bootstrap_admin"]

logger = logging.getLogger(__name__)

ADMIN_USER = "admin"

#: The ``Authorization`` schemes a token may come with (case-insensitive).
_SCHEMES = frozenset({"bearer", "key"})


class Authenticator:
    """Verifies bearer tokens against the registry, caching hits and misses by hash."""

    def __init__(self, registry: Registry, *, max_cached_misses: int = 10_000) -> None:
        self._registry = registry
        self._hits: dict[str, TokenInfo] = {}
        self._misses: set[str] = set()
        self._max_misses = max_cached_misses

    def verify(self, token: str) -> TokenInfo | None:
        """Return who ``token`` belongs to, or None when it is unknown or revoked."""
        digest = hash_token(token)
        info = self._hits.get(digest)
        if info is not None:
            if info.expires_at is not None and info.expires_at <= time.time():
                del self._hits[digest]
                return None
            return info
        if digest in self._misses:
            return None
        info = self._registry.lookup_token(digest)
        if info is not None and info.expires_at is not None and info.expires_at <= time.time():
            info = None  # expired: refused like an unknown token (and cached as a miss)
        if info is None:
            if len(self._misses) >= self._max_misses:
                self._misses.clear()
            self._misses.add(digest)
            return None
        self._hits[digest] = info
        return info

    def verify_header(self, header: str | None) -> TokenInfo | None:
        """Verify an ``Authorization: Bearer <token>`` (or ``Key <token>``) header value.

        ``Key`` is how Clarifai clients send a PAT; accepting it lets their scripts and
        snippets call edge-runner with only the base URL and token changed.
        """
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in _SCHEMES or not token.strip():
            return None
        return self.verify(token.strip())

    def forget(self, token_hash: str) -> None:
        """Drop a revoked token from the cache, so the next check sees the revocation."""
        self._hits.pop(token_hash, None)


def bootstrap_admin(registry: Registry, token_file: Path) -> bool:
    """On first start create the admin user and token, writing the token to a 0600 file.

    Returns:
        True when a token was created (first start), False when users already existed.
    """
    if registry.has_users():
        return False
    registry.create_user(ADMIN_USER)
    token = registry.create_token(ADMIN_USER, name="bootstrap-admin", scopes=ADMIN_SCOPES)
    token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(token_file, (token + "\n").encode())
    logger.info("created the admin token; it is in %s (%s)", token_file, private_file_note())
    return True
