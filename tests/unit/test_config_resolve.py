"""Tests for edge_runner.config.resolve: precedence, messages and secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runner.config import (
    Context,
    ContextsFile,
    Credentials,
    SecretStore,
    config_file,
    mask_secret,
    resolve_credentials,
)
from edge_runner.errors import ConfigError

TOKEN = "er_pat_ab12cd34ef56gh78ij90kl"
LAB_TOKEN = "er_pat_lab0cd34ef56gh78ij90kl"


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Own EDGE_RUNNER_HOME, file secret store, and none of the developer's overrides."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
    for name in (
        "EDGE_RUNNER_CONFIG",
        "EDGE_RUNNER_CONTEXT",
        "EDGE_RUNNER_API_BASE",
        "EDGE_RUNNER_PAT",
        "EDGE_RUNNER_USER_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def contexts() -> ContextsFile:
    """Two saved contexts, `local` current, each with a token in the file store."""
    doc = ContextsFile.load()
    doc.put(Context(name="local", api_base="http://127.0.0.1:7070", user_id="admin"), True)
    doc.put(Context(name="lab", api_base="https://lab.example", user_id="alice"))
    doc.save()
    store = SecretStore()
    store.set("local", TOKEN)
    store.set("lab", LAB_TOKEN)
    return doc


def _forbid_secret_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open the default secret store fail loudly."""
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "must-not-be-opened")


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("er_pat_ab12cd34ef56gh78ij90kl", "er_pat_ab12****"),
        ("er_rt_9f8e7d6c5b4a39281706", "er_rt_9f8e****"),
        ("Zx9_k2Lm8Qp4Rt6Vw1Yb3Nd5", "Zx9_****"),
        ("abcdefghijklmnopqrstuvwxyz", "abcd****"),
        ("er_pat_short", "****"),
        ("hunter2", "****"),
        ("", "****"),
    ],
)
def test_mask_secret(secret: str, masked: str) -> None:
    """mask_secret keeps a short type prefix and 4 characters; short secrets become ****."""
    assert mask_secret(secret) == masked


def test_credentials_repr_masks_token() -> None:
    """repr() and str() of Credentials never show the token."""
    creds = Credentials(api_base="http://x", token=TOKEN, user_id="admin", context="local")
    assert TOKEN not in repr(creds)
    assert TOKEN not in str(creds)
    assert "er_pat_ab12****" in repr(creds)


def test_active_context_supplies_everything(contexts: ContextsFile) -> None:
    """With no args or env the current context gives api_base, user_id and the stored token."""
    assert resolve_credentials() == Credentials(
        api_base="http://127.0.0.1:7070", token=TOKEN, user_id="admin", context="local"
    )


def test_env_beats_context(monkeypatch: pytest.MonkeyPatch, contexts: ContextsFile) -> None:
    """EDGE_RUNNER_API_BASE / PAT / USER_ID override the context's values."""
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://env:1")
    monkeypatch.setenv("EDGE_RUNNER_PAT", "env-token")
    monkeypatch.setenv("EDGE_RUNNER_USER_ID", "env-user")
    creds = resolve_credentials()
    assert (creds.api_base, creds.token, creds.user_id) == ("http://env:1", "env-token", "env-user")


def test_args_beat_env(monkeypatch: pytest.MonkeyPatch, contexts: ContextsFile) -> None:
    """Explicit arguments override environment variables."""
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://env:1")
    monkeypatch.setenv("EDGE_RUNNER_PAT", "env-token")
    creds = resolve_credentials(api_base="http://arg:2", token="arg-token")
    assert (creds.api_base, creds.token) == ("http://arg:2", "arg-token")


def test_context_arg_beats_env_context(
    monkeypatch: pytest.MonkeyPatch, contexts: ContextsFile
) -> None:
    """context= beats EDGE_RUNNER_CONTEXT, which beats current-context."""
    monkeypatch.setenv("EDGE_RUNNER_CONTEXT", "lab")
    assert resolve_credentials().token == LAB_TOKEN
    assert resolve_credentials(context="local").token == TOKEN


def test_env_token_never_opens_secret_store(
    monkeypatch: pytest.MonkeyPatch, contexts: ContextsFile
) -> None:
    """When the token comes from env, the secret store is not opened even if a context is used."""
    _forbid_secret_store(monkeypatch)
    monkeypatch.setenv("EDGE_RUNNER_PAT", "env-token")
    creds = resolve_credentials()
    assert (creds.api_base, creds.token, creds.context) == (
        "http://127.0.0.1:7070",
        "env-token",
        "local",
    )


def test_fully_specified_env_does_not_read_contexts_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """API base and token from env need neither the contexts file (even broken) nor secrets."""
    _forbid_secret_store(monkeypatch)
    config_file().parent.mkdir(parents=True)
    config_file().write_text("contexts: [broken\n")
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://env:1")
    monkeypatch.setenv("EDGE_RUNNER_PAT", "env-token")
    assert resolve_credentials() == Credentials(
        api_base="http://env:1", token="env-token", user_id=None, context=None
    )


def test_given_store_is_used(contexts: ContextsFile, tmp_path: Path) -> None:
    """A store passed in is the one asked for the token."""
    other = SecretStore(secrets_dir=tmp_path / "other-secrets")
    other.set("local", "from-other-store-000000000")
    assert resolve_credentials(store=other).token == "from-other-store-000000000"


def test_nothing_configured_says_how_to_fix() -> None:
    """No args, env or contexts: the error names what is missing and suggests up / env vars."""
    with pytest.raises(ConfigError) as info:
        resolve_credentials()
    message = str(info.value)
    assert "missing the API base and a token" in message
    assert "edge-runner up" in message
    assert "EDGE_RUNNER_API_BASE" in message and "EDGE_RUNNER_PAT" in message


def test_missing_token_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API base without any token or context says a token is missing."""
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://env:1")
    with pytest.raises(ConfigError, match="missing a token"):
        resolve_credentials()


def test_context_without_stored_token(contexts: ContextsFile) -> None:
    """A context whose secret is gone names the context and how to log in again."""
    SecretStore().delete("lab")
    with pytest.raises(ConfigError, match=r"Context 'lab' .*edge-runner login --context lab"):
        resolve_credentials(context="lab")


def test_unknown_context_lists_known(contexts: ContextsFile) -> None:
    """Naming a context that does not exist lists the known ones."""
    with pytest.raises(ConfigError, match="Known contexts: lab, local"):
        resolve_credentials(context="prod")


def test_contexts_without_current_ask_to_pick_one() -> None:
    """Contexts exist but none is current: the error lists them instead of a generic one."""
    doc = ContextsFile.load()
    doc.put(Context(name="lab", api_base="https://lab.example", user_id="alice"))
    doc.save()
    with pytest.raises(ConfigError, match="No context is selected"):
        resolve_credentials()


def test_explicit_config_path(tmp_path: Path) -> None:
    """config_path= reads contexts from that file."""
    doc = ContextsFile(path=tmp_path / "elsewhere.yaml")
    doc.put(Context(name="x", api_base="http://x:9", user_id="u"), make_current=True)
    doc.save()
    SecretStore().set("x", TOKEN)
    assert resolve_credentials(config_path=tmp_path / "elsewhere.yaml").api_base == "http://x:9"
