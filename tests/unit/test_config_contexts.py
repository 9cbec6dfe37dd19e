"""Tests for edge_runner.config.contexts: the contexts file, its shape, modes and messages."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from edge_runner.config import Context, ContextsFile, config_file
from edge_runner.errors import ConfigError

DEV = Context(name="dev", api_base="http://127.0.0.1:7070", user_id="admin")
LAB = Context(
    name="lab",
    api_base="https://lab.example:7070",
    user_id="alice",
    extra={"ca_file": "/etc/lab-ca.pem", "labels": {"site": "b2"}},
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Give every test its own EDGE_RUNNER_HOME and no context overrides."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    monkeypatch.delenv("EDGE_RUNNER_CONFIG", raising=False)
    monkeypatch.delenv("EDGE_RUNNER_CONTEXT", raising=False)
    return tmp_path


def _write(text: str) -> Path:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_missing_file_loads_empty() -> None:
    """A missing contexts file reads as one with no contexts."""
    loaded = ContextsFile.load()
    assert loaded.path == config_file()
    assert loaded.current is None
    assert loaded.contexts == {}


def test_round_trip_keeps_extra_and_unknown_keys() -> None:
    """Saving and loading keeps contexts, current-context, extra keys and unknown top keys."""
    _write("current-context: dev\ncontexts: {}\nfuture-setting: 3\n")
    doc = ContextsFile.load()
    doc.put(DEV)
    doc.put(LAB, make_current=True)
    doc.save()
    loaded = ContextsFile.load()
    assert loaded.current == "lab"
    assert loaded.contexts == {"dev": DEV, "lab": LAB}
    raw = yaml.safe_load(config_file().read_text())
    assert raw["current-context"] == "lab"
    assert raw["contexts"]["lab"] == {
        "api_base": "https://lab.example:7070",
        "user_id": "alice",
        "ca_file": "/etc/lab-ca.pem",
        "labels": {"site": "b2"},
    }
    assert raw["future-setting"] == 3


def test_save_writes_0600_file_in_0700_dir(home: Path) -> None:
    """The contexts file is 0600 and the config dir 0700, with no temp file left behind."""
    doc = ContextsFile.load()
    doc.put(DEV, make_current=True)
    doc.save()
    assert _mode(config_file()) == 0o600
    assert _mode(home / "config") == 0o700
    assert [p.name for p in (home / "config").iterdir()] == ["config.yaml"]


def test_save_tightens_loose_config_dir(home: Path) -> None:
    """An existing config dir open to others is re-chmod-ed to 0700 on save."""
    (home / "config").mkdir(mode=0o755)
    (home / "config").chmod(0o755)
    doc = ContextsFile.load()
    doc.put(DEV)
    doc.save()
    assert _mode(home / "config") == 0o700


def test_save_leaves_a_custom_parent_dir_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EDGE_RUNNER_CONFIG in a user's own folder does not chmod that folder."""
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)
    monkeypatch.setenv("EDGE_RUNNER_CONFIG", str(project / "er.yaml"))
    doc = ContextsFile.load()
    doc.put(DEV)
    doc.save()
    assert _mode(project) == 0o755
    assert _mode(project / "er.yaml") == 0o600


def test_malformed_yaml_names_file_and_line() -> None:
    """Broken YAML gives a ConfigError with the file name and line number."""
    path = _write("current-context: dev\ncontexts:\n  dev: {api_base: [\n")
    with pytest.raises(ConfigError) as info:
        ContextsFile.load()
    message = str(info.value)
    assert str(path) in message
    assert "line 4" in message
    assert isinstance(info.value.__cause__, yaml.YAMLError)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("- just\n- a list\n", "current-context"),
        ("current-context: [a]\n", "current-context"),
        ("contexts: [dev]\n", "`contexts`"),
        ("contexts:\n  dev: http://x\n", "contexts.dev"),
        ("contexts:\n  dev: {user_id: admin}\n", "contexts.dev.api_base"),
        ("contexts:\n  dev: {api_base: http://x, user_id: 7}\n", "contexts.dev.user_id"),
        ("contexts:\n  1: {api_base: http://x, user_id: a}\n", "context names"),
    ],
)
def test_wrong_shape_names_the_key(text: str, key: str) -> None:
    """A well-formed file of the wrong shape gives a ConfigError naming the key and the file."""
    path = _write(text)
    with pytest.raises(ConfigError) as info:
        ContextsFile.load()
    assert key in str(info.value)
    assert str(path) in str(info.value)


def test_secret_in_file_is_refused_on_load() -> None:
    """A token written into the contexts file by hand is refused, naming the key."""
    _write("contexts:\n  dev: {api_base: http://x, user_id: a, pat: er_pat_123}\n")
    with pytest.raises(ConfigError, match=r"contexts\.dev\.pat") as info:
        ContextsFile.load()
    assert "er_pat_123" not in str(info.value)


@pytest.mark.parametrize(
    "key", ["token", "api_token", "PAT", "client-secret", "password", "api-key", "nested.token"]
)
def test_secret_like_extra_keys_are_refused(key: str) -> None:
    """Extra keys named like token/pat/secret/password cannot be put into or saved in the file."""
    extra: dict[str, object] = {key: "x"}
    if key == "nested.token":
        extra = {"auth": {"token": "x"}}
    doc = ContextsFile.load()
    with pytest.raises(ConfigError, match="secret"):
        doc.put(Context(name="dev", api_base="http://x", user_id="a", extra=extra))
    doc.contexts["dev"] = Context(name="dev", api_base="http://x", user_id="a", extra=extra)
    with pytest.raises(ConfigError, match="secret"):
        doc.save()
    assert not config_file().exists()


def test_harmless_keys_that_contain_pat_are_kept() -> None:
    """Keys like `path` or `patch_level` are not mistaken for a PAT."""
    ctx = Context(name="dev", api_base="http://x", user_id="a", extra={"path": "/p", "patch": 1})
    doc = ContextsFile.load()
    doc.put(ctx)
    doc.save()
    assert ContextsFile.load().get("dev") == ctx


def test_unknown_context_lists_known_ones() -> None:
    """Asking for a missing context names it, lists the known ones and says how to create it."""
    doc = ContextsFile.load()
    doc.put(LAB)
    doc.put(DEV)
    with pytest.raises(ConfigError) as info:
        doc.get("prod")
    assert str(info.value) == (
        "No context named 'prod'. Known contexts: dev, lab. "
        "Create one with `edge-runner context create prod`."
    )


def test_unknown_context_with_none_known_says_how_to_start() -> None:
    """With no contexts at all the message points at `edge-runner up` and `login`."""
    with pytest.raises(ConfigError, match=r"No contexts yet\. Run `edge-runner up` or"):
        ContextsFile.load().get("prod")


def test_active_prefers_explicit_then_env_then_current(monkeypatch: pytest.MonkeyPatch) -> None:
    """active(): explicit name beats EDGE_RUNNER_CONTEXT, which beats current-context."""
    doc = ContextsFile.load()
    doc.put(DEV, make_current=True)
    doc.put(LAB)
    doc.put(Context(name="ci", api_base="http://ci", user_id="bot"))
    assert doc.active().name == "dev"
    monkeypatch.setenv("EDGE_RUNNER_CONTEXT", "lab")
    assert doc.active().name == "lab"
    assert doc.active("ci").name == "ci"


def test_active_env_naming_unknown_context_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown name from EDGE_RUNNER_CONTEXT is reported with its source."""
    doc = ContextsFile.load()
    doc.put(DEV, make_current=True)
    monkeypatch.setenv("EDGE_RUNNER_CONTEXT", "prod")
    with pytest.raises(ConfigError, match="EDGE_RUNNER_CONTEXT"):
        doc.active()


def test_active_without_selection_explains_how_to_pick() -> None:
    """Contexts but none current: the error lists them and says how to pick one."""
    doc = ContextsFile.load()
    doc.put(DEV)
    with pytest.raises(ConfigError, match=r"No context is selected\. Known contexts: dev\."):
        doc.active()


def test_active_without_contexts_says_how_to_create() -> None:
    """No contexts at all: the error says to run `edge-runner up` or `login`."""
    with pytest.raises(ConfigError, match="No contexts yet"):
        ContextsFile.load().active()


def test_remove_drops_context_and_current() -> None:
    """Removing the current context clears current-context; unknown names are an error."""
    doc = ContextsFile.load()
    doc.put(DEV, make_current=True)
    doc.put(LAB)
    doc.remove("dev")
    assert doc.current is None
    assert list(doc.contexts) == ["lab"]
    with pytest.raises(ConfigError, match="Known contexts: lab"):
        doc.remove("dev")


def test_put_refuses_empty_name_and_reserved_extra() -> None:
    """A context needs a name, and api_base/user_id cannot hide in extra."""
    doc = ContextsFile.load()
    with pytest.raises(ConfigError, match="name"):
        doc.put(Context(name="", api_base="http://x", user_id="a"))
    with pytest.raises(ConfigError, match="api_base"):
        doc.put(Context(name="dev", api_base="http://x", user_id="a", extra={"api_base": "y"}))


def test_context_is_hashable_and_frozen() -> None:
    """Context is a frozen record usable in sets."""
    assert len({DEV, LAB, DEV}) == 2
    with pytest.raises(AttributeError):
        DEV.name = "other"  # type: ignore[misc]


def test_unknown_keys_are_kept_with_a_warning_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown keys load (and survive a save) but are named in a warning."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "current-context: a\ncolour: blue\ncontexts:\n"
        "  a: {api_base: 'http://x', user_id: u, ca_file: /ca.pem, flavour: mint}\n"
    )
    with caplog.at_level("WARNING"):
        loaded = ContextsFile.load(path)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "colour" in text and "flavour" in text and "ca_file" not in text
    loaded.save()
    assert "flavour: mint" in path.read_text() and "colour: blue" in path.read_text()
