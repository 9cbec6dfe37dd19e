"""Tests for edge_runner.config.secrets: backend choice, time-boxed keyring, 0600 file store.

The keyring backends below are this test's own, real in-process ``KeyringBackend`` subclasses
(an in-memory dict, one that blocks, one that fails); ``viable = False`` keeps keyring's own
detection from ever choosing them for other tests.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest
from keyring.backend import KeyringBackend

from edge_runner.config import SecretStore, data_dir, secret_store
from edge_runner.config import secrets as secrets_module
from edge_runner.errors import ConfigError, SecretStoreError
from tests.fakes.keyring import LockedKeyring, MemoryKeyring

MS = 0.001 * float(os.environ.get("TIMEOUT_FACTOR", 1))
SHORT_TIMEOUT = 200 * MS
TOKEN = "er_pat_ab12cd34ef56gh78ij90kl"


class BlockingKeyring(MemoryKeyring):
    """A keyring that hangs like a locked Secret Service until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.release.wait()


class PlaintextKeyring(MemoryKeyring):
    """Named like keyrings.alt's plain-text backend: must not count as a keyring."""


class AltEncryptedKeyring(MemoryKeyring):
    """Pretends to come from keyrings.alt: must not count as a keyring."""


AltEncryptedKeyring.__module__ = "keyrings.alt.file"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secrets_dir() -> Path:
    return data_dir() / "secrets"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Own EDGE_RUNNER_HOME, a fresh once-per-process warning, and the keyring put back after."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    monkeypatch.delenv("EDGE_RUNNER_SECRET_BACKEND", raising=False)
    monkeypatch.setattr(secrets_module, "_file_store_warned", False)
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def blocking() -> Iterator[BlockingKeyring]:
    """A hung keyring installed as the backend; released at teardown so its threads end."""
    backend = BlockingKeyring()
    keyring.set_keyring(backend)
    yield backend
    backend.release.set()


def test_memory_keyring_is_used_for_round_trip() -> None:
    """A real backend stores under service `edge-runner`, user = context, and no file is written."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    store = secret_store(timeout=SHORT_TIMEOUT)
    assert store.backend_name == f"keyring:{MemoryKeyring.__module__}.MemoryKeyring"
    store.set("dev", TOKEN)
    assert backend.entries == {("edge-runner", "dev"): TOKEN}
    assert store.get("dev") == TOKEN
    store.delete("dev")
    assert store.get("dev") is None
    store.delete("dev")  # deleting twice is fine
    assert not _secrets_dir().exists()


@pytest.mark.parametrize(
    "backend",
    [
        keyring.backends.fail.Keyring(),
        keyring.backends.null.Keyring(),
        PlaintextKeyring(),
        AltEncryptedKeyring(),
    ],
    ids=["fail", "null", "plaintext", "keyrings.alt"],
)
def test_unusable_backends_fall_back_to_files(backend: KeyringBackend) -> None:
    """fail, null, plain-text and keyrings.alt backends do not count; the file store is used."""
    keyring.set_keyring(backend)
    store = secret_store(timeout=SHORT_TIMEOUT)
    assert store.backend_name == f"file:{_secrets_dir()}"
    store.set("dev", TOKEN)
    assert (_secrets_dir() / "dev.token").read_text() == TOKEN


def test_chainer_without_real_backend_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chainer that only chains plain-text backends falls back to the file store."""
    chainer = keyring.backends.chainer.ChainerBackend
    monkeypatch.setattr(chainer, "backends", [PlaintextKeyring()])
    keyring.set_keyring(chainer())
    assert secret_store(timeout=SHORT_TIMEOUT).backend_name.startswith("file:")


def test_chainer_uses_its_best_real_backend_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chainer with a real backend behind plain text ones uses the real one, never the text."""
    real, text = MemoryKeyring(), PlaintextKeyring()
    chainer = keyring.backends.chainer.ChainerBackend
    monkeypatch.setattr(chainer, "backends", [text, real])
    keyring.set_keyring(chainer())
    store = secret_store(timeout=SHORT_TIMEOUT)
    store.set("dev", TOKEN)
    assert store.backend_name.endswith(".MemoryKeyring")
    assert real.entries and not text.entries


def test_file_store_modes_and_single_warning(caplog: pytest.LogCaptureFixture) -> None:
    """File store: dir 0700, file 0600, and one warning per process naming the directory."""
    keyring.set_keyring(keyring.backends.fail.Keyring())
    caplog.set_level(logging.WARNING, logger="edge_runner.config.secrets")
    store = secret_store(timeout=SHORT_TIMEOUT)
    store.set("dev", TOKEN)
    store.set("lab", TOKEN)
    assert secret_store(timeout=SHORT_TIMEOUT).get("dev") == TOKEN
    assert _mode(_secrets_dir()) == 0o700
    assert _mode(_secrets_dir() / "dev.token") == 0o600
    assert sorted(p.name for p in _secrets_dir().iterdir()) == ["dev.token", "lab.token"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"No OS keyring backend is available; storing secrets in {_secrets_dir()} (mode 0600)."
    ]


def test_env_forces_file_store(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """EDGE_RUNNER_SECRET_BACKEND=file uses files even when a keyring works, and says nothing
    about a missing keyring: the file store is what was asked for."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
    caplog.set_level(logging.WARNING, logger="edge_runner.config.secrets")
    store = secret_store(timeout=SHORT_TIMEOUT)
    store.set("dev", TOKEN)
    assert store.backend_name.startswith("file:")
    assert backend.entries == {}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_env_forces_keyring_and_errors_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGE_RUNNER_SECRET_BACKEND=keyring with no usable keyring is an error, not a fallback."""
    keyring.set_keyring(keyring.backends.fail.Keyring())
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "keyring")
    with pytest.raises(SecretStoreError, match="EDGE_RUNNER_SECRET_BACKEND=keyring"):
        secret_store(timeout=SHORT_TIMEOUT)


def test_env_with_unknown_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown EDGE_RUNNER_SECRET_BACKEND value is a ConfigError listing the choices."""
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "vault")
    with pytest.raises(ConfigError, match="auto, keyring, file"):
        secret_store()


def test_hung_keyring_times_out_and_falls_back(
    blocking: BlockingKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    """A keyring that never answers is abandoned after the timeout; files are used, one warning."""
    caplog.set_level(logging.WARNING, logger="edge_runner.config.secrets")
    store = secret_store(timeout=SHORT_TIMEOUT)
    assert store.backend_name.endswith(".BlockingKeyring")
    started = time.monotonic()
    assert store.get("dev") is None
    store.set("dev", TOKEN)
    assert time.monotonic() - started < 50 * SHORT_TIMEOUT
    assert store.backend_name == f"file:{_secrets_dir()}"
    assert store.get("dev") == TOKEN
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "did not answer" in warnings[0] and str(_secrets_dir()) in warnings[0]


def test_hung_keyring_with_forced_keyring_raises(
    blocking: BlockingKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EDGE_RUNNER_SECRET_BACKEND=keyring a hung keyring raises instead of falling back."""
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "keyring")
    store = secret_store(timeout=SHORT_TIMEOUT)
    with pytest.raises(SecretStoreError, match="did not answer"):
        store.get("dev")
    assert not _secrets_dir().exists()


def test_hung_keyring_detection_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyring detection itself is time-boxed too."""
    release = threading.Event()

    def hang() -> KeyringBackend:
        release.wait()
        return MemoryKeyring()

    monkeypatch.setattr(keyring, "get_keyring", hang)
    try:
        assert secret_store(timeout=SHORT_TIMEOUT).backend_name.startswith("file:")
    finally:
        release.set()


def test_keyring_error_falls_back_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    """A keyring that raises is abandoned; the warning names the error."""
    keyring.set_keyring(LockedKeyring())
    caplog.set_level(logging.WARNING, logger="edge_runner.config.secrets")
    store = secret_store(timeout=SHORT_TIMEOUT)
    store.set("dev", TOKEN)
    assert (_secrets_dir() / "dev.token").read_text() == TOKEN
    assert "KeyringLocked" in caplog.text


def test_secret_left_by_fallback_is_found_then_cleaned_up() -> None:
    """A token saved to a file during a fallback is still read, and a keyring write removes it."""
    SecretStore().set("dev", TOKEN)
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    store = secret_store(timeout=SHORT_TIMEOUT)
    assert store.get("dev") == TOKEN
    store.set("dev", TOKEN + "2")
    assert not (_secrets_dir() / "dev.token").exists()
    assert store.get("dev") == TOKEN + "2"


def test_loose_secret_file_is_refused() -> None:
    """Reading a secret file readable by others raises with the chmod that fixes it."""
    store = SecretStore()
    store.set("dev", TOKEN)
    path = _secrets_dir() / "dev.token"
    path.chmod(0o644)
    with pytest.raises(SecretStoreError) as info:
        store.get("dev")
    assert str(info.value).startswith(
        f"{path} is readable by other users; fix it with `chmod 600 {path}`"
    )
    assert TOKEN not in str(info.value)


def test_loose_dir_is_tightened_on_use() -> None:
    """A secrets dir open to others is re-chmod-ed to 0700 on the next read."""
    store = SecretStore()
    store.set("dev", TOKEN)
    _secrets_dir().chmod(0o755)
    assert store.get("dev") == TOKEN
    assert _mode(_secrets_dir()) == 0o700


def test_writing_over_loose_file_makes_it_0600() -> None:
    """Writing over an existing secret file with loose bits leaves a 0600 file."""
    store = SecretStore()
    store.set("dev", TOKEN)
    path = _secrets_dir() / "dev.token"
    path.chmod(0o644)
    store.set("dev", TOKEN + "2")
    assert _mode(path) == 0o600
    assert store.get("dev") == TOKEN + "2"


def test_write_is_atomic_and_leaves_no_temp_files() -> None:
    """After writes only the final files remain in the secrets dir."""
    store = SecretStore()
    for i in range(3):
        store.set("dev", f"{TOKEN}{i}")
    assert [p.name for p in _secrets_dir().iterdir()] == ["dev.token"]


def test_odd_context_names_stay_inside_the_dir() -> None:
    """Names with slashes or dots are sanitised, stay in the dir and never collide."""
    store = SecretStore()
    store.set("../escape", "one-secret-value")
    store.set("a/b", "two")
    store.set("a_b", "three")
    assert store.get("../escape") == "one-secret-value"
    assert store.get("a/b") == "two"
    assert store.get("a_b") == "three"
    names = [p.name for p in _secrets_dir().iterdir()]
    assert len(names) == 3 and "a_b.token" in names
    assert all(p.parent == _secrets_dir() for p in _secrets_dir().iterdir())
    assert not (data_dir() / "escape.token").exists()


def test_symlinked_secret_file_is_refused(tmp_path: Path) -> None:
    """A secret file that is a symlink is not followed."""
    store = SecretStore()
    store.set("other", TOKEN)
    target = tmp_path / "elsewhere"
    target.write_text(TOKEN)
    target.chmod(0o600)
    (_secrets_dir() / "dev.token").symlink_to(target)
    with pytest.raises(SecretStoreError, match="symbolic link"):
        store.get("dev")


def test_secrets_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged at any level contains the secret."""
    caplog.set_level(logging.DEBUG)
    keyring.set_keyring(LockedKeyring())
    store = secret_store(timeout=SHORT_TIMEOUT)
    store.set("dev", TOKEN)
    assert store.get("dev") == TOKEN
    store.delete("dev")
    assert caplog.records
    assert TOKEN not in caplog.text


def test_empty_secret_is_refused() -> None:
    """Storing an empty secret is an error rather than a silent no-op."""
    with pytest.raises(SecretStoreError, match="empty"):
        SecretStore().set("dev", "")
