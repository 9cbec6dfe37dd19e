"""Secrets are written one way: atomically, and 0600 even over a file with a looser mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge_runner.config import PRIVATE_FILE_MODE, write_private_file
from edge_runner.control.auth import bootstrap_admin
from edge_runner.control.registry import Registry
from edge_runner.control.tls import self_signed

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _loose(path: Path, text: str = "old\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_0644_file_ends_up_0600_with_the_new_content(tmp_path: Path) -> None:
    """The helper replaces a world-readable file by a 0600 one and leaves no temporary file."""
    path = _loose(tmp_path / "secret")
    write_private_file(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert _mode(path) == PRIVATE_FILE_MODE == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_a_new_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    """An odd umask (0) cannot widen the mode of a file created by the helper."""
    old = os.umask(0)
    try:
        write_private_file(tmp_path / "secret", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "secret") == 0o600


def test_the_admin_token_file_is_0600_over_loose_leftovers(tmp_path: Path) -> None:
    """bootstrap_admin writes the token through the helper: 0644 leftovers (the file, and the
    temporary file an interrupted older write left) do not make it readable by others."""
    token_file = _loose(tmp_path / "data" / "admin-token")
    _loose(token_file.with_suffix(".tmp"))
    with Registry(tmp_path / "control.db") as registry:
        assert bootstrap_admin(registry, token_file)
    assert token_file.read_text().startswith("er_") and _mode(token_file) == 0o600


def test_the_tls_key_is_0600_over_a_loose_one(tmp_path: Path) -> None:
    """self_signed writes the server key through the helper: a 0644 leftover becomes 0600."""
    key = _loose(tmp_path / "tls" / "server.key")
    files = self_signed(tmp_path, ["127.0.0.1"])
    assert files.key == key
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _mode(key) == 0o600
