"""The SQLite registry and the bootstrap of the admin token."""

from __future__ import annotations

import stat
from pathlib import Path

from edge_runner.control.auth import ADMIN_USER, Authenticator, bootstrap_admin
from edge_runner.control.registry import Registry, RunnerRecord, hash_token


def test_bootstrap_writes_a_0600_token_file_once(tmp_path: Path) -> None:
    """First start creates the admin token in a 0600 file; later starts do not."""
    token_file = tmp_path / "data" / "admin-token"
    with Registry(tmp_path / "r.db") as registry:
        assert bootstrap_admin(registry, token_file) is True
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert token.startswith("er_pat_") and len(token) >= 7 + 43
        assert bootstrap_admin(registry, token_file) is False
        info = Authenticator(registry).verify(token)
        assert info is not None and info.user_id == ADMIN_USER and "runner" in info.scopes


def test_tokens_are_stored_hashed(tmp_path: Path) -> None:
    """The database holds SHA-256 digests, never the token."""
    db = tmp_path / "r.db"
    with Registry(db) as registry:
        registry.create_user("u")
        token = registry.create_token("u", "t")
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("r.db*"))
    assert token.encode() not in raw
    with Registry(db) as registry:
        assert registry.lookup_token(hash_token(token)) is not None
        assert registry.lookup_token(hash_token(token + "x")) is None


def test_authenticator_checks_bearer_headers(tmp_path: Path) -> None:
    """Only `Bearer <valid token>` passes."""
    with Registry(tmp_path / "r.db") as registry:
        registry.create_user("u")
        token = registry.create_token("u", "t")
        auth = Authenticator(registry)
        assert auth.verify_header(f"Bearer {token}") is not None
        assert auth.verify_header(f"bearer {token}") is not None
        for bad in (None, "", token, f"Basic {token}", "Bearer ", f"Bearer {token}x"):
            assert auth.verify_header(bad) is None


def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    """Reopening a database keeps its data and schema version."""
    db = tmp_path / "r.db"
    with Registry(db) as registry:
        version = registry.schema_version
        registry.create_user("u")
        registry.upsert_model("u", {"id": "m", "methods": []}, "h1")
        registry.upsert_runner(RunnerRecord("r1", "u", {"hostname": "h"}, "connected", 1.0))
    with Registry(db) as registry:
        assert registry.schema_version == version >= 1
        assert [m.model_id for m in registry.models()] == ["m"]
        registry.set_runner_status("r1", "disconnected", 2.0)
        assert registry.runners()[0].status == "disconnected"
