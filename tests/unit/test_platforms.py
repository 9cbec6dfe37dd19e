"""Desktop platforms on a Linux test machine: signals, child processes, locks, paths, keyrings.

Windows and macOS branches run here by setting ``sys.platform`` for the call (or ``os.name``, in
the modules under test only: pathlib reads it too) and handing the code what that platform
would: platformdirs' own ``MacOS``/``Windows`` classes (with Windows' known-folder lookup
answered by a dict), a stand-in ``signal`` namespace with SIGBREAK, a stand-in ``msvcrt``.
Those stand-ins are fakes, defined here and named so. The POSIX branches run for real: a child
process gets SIGTERM, files get locked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path, PureWindowsPath
from types import FrameType, SimpleNamespace
from typing import Any

import keyring
import keyring.backends.chainer
import platformdirs
import platformdirs.macos
import platformdirs.unix
import platformdirs.windows
import pytest
from keyring.backend import KeyringBackend

from edge_runner import _platform
from edge_runner.config import paths, secret_store
from edge_runner.config import secrets as secrets_module
from edge_runner.config._filestore import FileSecrets
from edge_runner.config.paths import ensure_private_dir, private_file_note
from edge_runner.errors import SecretStoreError
from tests.conftest import MS, ROOT

TIMEOUT = 20_000 * MS
TOKEN = "er_pat_platform_test_0123456789"


# -- stand-ins (fakes) for what only Windows has -------------------------------------------------


class FakeWindowsSignal:
    """FAKE: the parts of Windows' ``signal`` module we use (it has SIGBREAK, no SIGTERM sent)."""

    SIGINT = 2
    SIGTERM = 15
    SIGBREAK = 21
    CTRL_C_EVENT = 0
    CTRL_BREAK_EVENT = 1
    SIG_DFL = 0

    def __init__(self) -> None:
        self.handlers: dict[int, Any] = {2: "python's default", 21: None}

    def signal(self, sig: int, handler: Any) -> Any:
        previous, self.handlers[sig] = self.handlers.get(sig), handler
        return previous

    def getsignal(self, sig: int) -> Any:
        return self.handlers.get(sig)


class FakeMsvcrt:
    """FAKE: ``msvcrt.locking`` over a set of held (file name, byte) pairs, as Windows keeps."""

    LK_NBLCK = 2
    LK_UNLCK = 0
    held: set[str] = set()

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        name = self.names[fd]
        if mode == self.LK_UNLCK:
            self.held.discard(name)
        elif name in self.held:
            raise PermissionError(13, "Permission denied")  # what a held region answers
        else:
            self.held.add(name)


def _windows_os_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.name == "nt"`` as the config modules see it (the real ``os`` is left alone)."""
    from edge_runner.config import _filestore

    fake_os = SimpleNamespace(**{**vars(os), "name": "nt"})
    monkeypatch.setattr(paths, "os", fake_os)
    monkeypatch.setattr(_filestore, "os", fake_os)


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> FakeWindowsSignal:
    """Pretend to be Windows: sys.platform win32 and a Windows-like signal module."""
    fake = FakeWindowsSignal()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(_platform, "_signal", fake)
    return fake


# -- stop signals -------------------------------------------------------------------------------


def test_posix_stop_signals_are_sigint_and_sigterm() -> None:
    """On Linux/macOS the stop signals are SIGINT and SIGTERM (SIGHUP stays for nohup)."""
    assert _platform.stop_signals() == (signal.SIGINT, signal.SIGTERM)
    assert signal.SIGHUP not in _platform.stop_signals()


def test_windows_stop_signals_are_sigint_and_sigbreak(windows: FakeWindowsSignal) -> None:
    """On Windows the stop signals are SIGINT (Ctrl-C) and SIGBREAK (Ctrl-Break, CTRL_BREAK)."""
    assert _platform.stop_signals() == (windows.SIGINT, windows.SIGBREAK)


def test_windows_handlers_use_signal_and_hop_onto_the_loop(windows: FakeWindowsSignal) -> None:
    """Windows: signal.signal for SIGINT/SIGBREAK; a signal runs on_stop on the loop; undo works."""
    loop = asyncio.new_event_loop()
    calls: list[str] = []
    try:
        restore = _platform.install_stop_handlers(loop, lambda: calls.append("stop"))
        assert set(windows.handlers) == {windows.SIGINT, windows.SIGBREAK}
        handler: Callable[[int, FrameType | None], None] = windows.handlers[windows.SIGBREAK]
        assert windows.handlers[windows.SIGINT] is handler
        handler(windows.SIGBREAK, None)  # as Python calls it, in the main thread
        handler(windows.SIGINT, None)
        assert calls == []  # not yet: it runs on the loop
        loop.run_until_complete(asyncio.sleep(0))
        assert calls == ["stop", "stop"]
        restore()
        assert windows.handlers == {windows.SIGINT: "python's default", windows.SIGBREAK: 0}
    finally:
        loop.close()


def test_windows_handler_after_the_loop_closed_interrupts(windows: FakeWindowsSignal) -> None:
    """A Ctrl-C after the loop has closed raises KeyboardInterrupt instead of being lost."""
    loop = asyncio.new_event_loop()
    _platform.install_stop_handlers(loop, lambda: None)
    loop.close()
    handler = windows.handlers[windows.SIGINT]
    with pytest.raises(KeyboardInterrupt):
        handler(windows.SIGINT, None)
    with pytest.raises(SystemExit):
        handler(windows.SIGBREAK, None)


def test_loop_without_signal_support_falls_back_to_signal_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A POSIX loop whose add_signal_handler is not implemented gets signal.signal handlers."""
    fake = FakeWindowsSignal()
    monkeypatch.setattr(_platform, "_signal", fake)

    class NoSignalLoop(asyncio.SelectorEventLoop):
        def add_signal_handler(self, sig: int, callback: Any, *args: Any) -> None:
            raise NotImplementedError

    loop = NoSignalLoop()
    try:
        _platform.install_stop_handlers(loop, lambda: None)
        assert callable(fake.handlers[fake.SIGTERM]) and callable(fake.handlers[fake.SIGINT])
    finally:
        loop.close()


def test_outside_the_main_thread_nothing_is_installed(windows: FakeWindowsSignal) -> None:
    """Only the main thread receives signals, so elsewhere install is a no-op."""
    before = dict(windows.handlers)
    loop = asyncio.new_event_loop()
    results: list[Callable[[], None]] = []
    thread = threading.Thread(
        target=lambda: results.append(_platform.install_stop_handlers(loop, lambda: None))
    )
    thread.start()
    thread.join()
    loop.close()
    assert windows.handlers == before
    results[0]()  # the undo is a harmless no-op


_CHILD = """
import asyncio, sys
from edge_runner._platform import install_stop_handlers

async def main():
    stops = asyncio.Queue()
    install_stop_handlers(asyncio.get_running_loop(), lambda: stops.put_nowait(1))
    print("ready", flush=True)
    for n in (1, 2):
        await stops.get()
        print(f"stop {n}", flush=True)

asyncio.run(main())
"""


def test_real_sigterm_and_sigint_call_on_stop() -> None:
    """A real process: SIGTERM and then SIGINT each call on_stop; neither kills it."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.stdout.readline() == "stop 1\n"
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline() == "stop 2\n"
        assert child.wait(TIMEOUT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]


# -- child processes ------------------------------------------------------------------------------


class RecordingProcess:
    """A process stand-in that records the signals sent to it."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send_signal(self, sig: int) -> None:
        self.sent.append(sig)


def test_children_get_their_own_session_or_process_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """POSIX: start_new_session; Windows: CREATE_NEW_PROCESS_GROUP (so CTRL_BREAK can reach it)."""
    assert _platform.child_group_options() == {"start_new_session": True}
    monkeypatch.setattr(sys, "platform", "win32")
    assert _platform.child_group_options() == {"creationflags": 0x00000200}


def test_child_stop_is_sigterm_or_ctrl_break(windows: FakeWindowsSignal) -> None:
    """Windows children are asked to stop with CTRL_BREAK_EVENT (SIGTERM would kill them)."""
    proc = RecordingProcess()
    _platform.request_child_stop(proc)
    assert proc.sent == [windows.CTRL_BREAK_EVENT]


def test_posix_child_stop_drains_a_real_child() -> None:
    """POSIX: request_child_stop sends SIGTERM, which the child's handlers turn into a stop."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        **_platform.child_group_options(),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        _platform.request_child_stop(child)
        assert child.stdout.readline() == "stop 1\n"
        _platform.request_child_stop(child)
        assert child.wait(TIMEOUT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]


# -- locks ----------------------------------------------------------------------------------------


def test_posix_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    """A second open of the file cannot lock it until the first unlocks."""
    path = tmp_path / "runner.lock"
    with path.open("w") as first, path.open("a") as second:
        assert _platform.try_lock(first)
        assert not _platform.try_lock(second)
        _platform.unlock(first)
        assert _platform.try_lock(second)


def test_windows_lock_uses_msvcrt_locking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Windows: msvcrt.locking on the first byte, non-blocking; a held lock reads as False."""
    path = tmp_path / "runner.lock"
    with path.open("w") as first, path.open("a") as second:
        names = {first.fileno(): str(path), second.fileno(): str(path)}
        monkeypatch.setitem(sys.modules, "msvcrt", FakeMsvcrt(names))
        monkeypatch.setattr(sys, "platform", "win32")
        FakeMsvcrt.held.clear()
        assert _platform.try_lock(first)
        assert not _platform.try_lock(second)
        _platform.unlock(first)
        assert _platform.try_lock(second)
        assert second.tell() == 0  # locked from the start of the file, where both agree


# -- paths ----------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No edge-runner or XDG overrides, and HOME in a temp dir; returns that HOME."""
    for name in ("EDGE_RUNNER_HOME", "EDGE_RUNNER_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def _pretend(monkeypatch: pytest.MonkeyPatch, platform: str, dirs: type) -> None:
    monkeypatch.setattr(platformdirs, "PlatformDirs", dirs)
    monkeypatch.setattr(sys, "platform", platform)


def test_linux_paths_follow_xdg(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Linux: ~/.config, ~/.local/share and $XDG_RUNTIME_DIR, each with edge-runner/."""
    xdg = tmp_path / "xdg-run"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    _pretend(monkeypatch, "linux", platformdirs.unix.Unix)
    assert paths.config_dir() == clean_env / ".config" / "edge-runner"
    assert paths.data_dir() == clean_env / ".local" / "share" / "edge-runner"
    assert paths.runtime_dir() == xdg / "edge-runner"
    assert paths.config_file() == clean_env / ".config" / "edge-runner" / "config.yaml"


def test_linux_without_xdg_runtime_dir_never_uses_shared_tmp(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No XDG_RUNTIME_DIR: /run/user/UID if it is ours, else data/run; no warning, no /tmp."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    _pretend(monkeypatch, "linux", platformdirs.unix.Unix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # platformdirs' RuntimeDirWarning would fail here
        got = paths.runtime_dir()
    assert got in (paths.data_dir() / "run", Path(f"/run/user/{os.geteuid()}/edge-runner"))
    assert not got.is_relative_to(tmp_path / f"runtime-{os.geteuid()}")  # platformdirs' pick


def test_linux_squatted_temp_runtime_dir_falls_back(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """platformdirs refusing (another user owns /tmp/runtime-UID) means data/run, not a crash."""

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise PermissionError("runtime directory /tmp/runtime-1000 is owned by uid 1001")

    monkeypatch.setattr(platformdirs, "user_runtime_dir", refuse)
    monkeypatch.setattr(sys, "platform", "linux")
    assert paths.runtime_dir() == paths.data_dir() / "run"
    monkeypatch.setattr(
        platformdirs, "user_runtime_dir", lambda *a, **k: "/tmp/runtime-1000/edge-runner"
    )
    assert paths.runtime_dir() == paths.data_dir() / "run"


def test_linux_explicit_xdg_runtime_dir_in_tmp_is_kept(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An XDG_RUNTIME_DIR the user set is used even when it is named like a temp fallback."""
    xdg = tmp_path / "runtime-1000"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    _pretend(monkeypatch, "linux", platformdirs.unix.Unix)
    assert paths.runtime_dir() == xdg / "edge-runner"


def test_macos_paths(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS: config and data in ~/Library/Application Support/edge-runner, runtime in run/."""
    _pretend(monkeypatch, "darwin", platformdirs.macos.MacOS)
    support = clean_env / "Library" / "Application Support" / "edge-runner"
    assert paths.config_dir() == support
    assert paths.data_dir() == support
    assert paths.config_file() == support / "config.yaml"
    assert paths.runtime_dir() == support / "run"  # not ~/Library/Caches: macOS purges it


_WINDOWS_FOLDERS = {
    "CSIDL_LOCAL_APPDATA": r"C:\Users\ada\AppData\Local",
    "CSIDL_APPDATA": r"C:\Users\ada\AppData\Roaming",
}


def test_windows_paths(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r"""Windows: %LOCALAPPDATA%\edge-runner for config and data (not roaming), run\ inside."""
    _pretend(monkeypatch, "win32", platformdirs.windows.Windows)
    # What SHGetKnownFolderPath answers on Windows; platformdirs asks it through get_win_folder.
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", _WINDOWS_FOLDERS.__getitem__)
    local = PureWindowsPath(r"C:\Users\ada\AppData\Local\edge-runner")
    assert PureWindowsPath(str(paths.config_dir())) == local
    assert PureWindowsPath(str(paths.data_dir())) == local
    assert PureWindowsPath(str(paths.config_file())) == local / "config.yaml"
    assert PureWindowsPath(str(paths.runtime_dir())) == local / "run"  # not %TEMP%: it is aged


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_edge_runner_home_wins_everywhere(
    platform: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EDGE_RUNNER_HOME gives the same layout on every platform."""
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path / "er"))
    assert paths.config_dir() == tmp_path / "er" / "config"
    assert paths.data_dir() == tmp_path / "er" / "data"
    assert paths.runtime_dir() == tmp_path / "er" / "run"


# -- owner-only files on Windows ------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_windows_private_dir_is_not_chmod_ed_nor_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """os.name nt: an existing loose dir is left alone (chmod means nothing there), no error."""
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    _windows_os_name(monkeypatch)
    with caplog.at_level(logging.INFO):
        assert ensure_private_dir(loose) == loose
    assert _mode(loose) == 0o755
    assert "tightened" not in caplog.text


def test_windows_secret_file_is_read_without_a_mode_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """os.name nt: a secret file's POSIX mode (meaningless there) does not get it refused."""
    store = FileSecrets(tmp_path / "secrets")
    store.set("dev", TOKEN)
    store.path_for("dev").chmod(0o644)
    with pytest.raises(SecretStoreError, match="readable by other users"):
        store.get("dev")  # POSIX: refused
    _windows_os_name(monkeypatch)
    assert store.get("dev") == TOKEN


def test_messages_claim_0600_only_on_posix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file-store warning says "mode 0600" on POSIX and not on Windows."""
    assert private_file_note() == "mode 0600"
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "file")
    monkeypatch.setattr(secrets_module, "_file_store_warned", False)
    _windows_os_name(monkeypatch)
    note = private_file_note()
    assert "0600" not in note and "Windows" in note
    with caplog.at_level(logging.WARNING):
        secrets_module._warn_file_store(tmp_path / "secrets")
    assert note in caplog.text
    assert "mode 0600" not in caplog.text


# -- keyring backends -----------------------------------------------------------------------------

# keyring's real backend classes: they can be built on Linux, though only their own OS can
# answer them. (module, class, the sys.platform where they work)
_REAL_BACKENDS = [
    ("keyring.backends.macOS", "Keyring", "darwin"),
    ("keyring.backends.Windows", "WinVaultKeyring", "win32"),
    ("keyring.backends.SecretService", "Keyring", "linux"),
    ("keyring.backends.libsecret", "Keyring", "linux"),
    ("keyring.backends.kwallet", "DBusKeyring", "linux"),
]


def _real_backend(module: str, name: str) -> KeyringBackend:
    try:
        cls = getattr(__import__(module, fromlist=[name]), name)
        backend: KeyringBackend = cls()
    except Exception as exc:  # a keyring release that cannot even build it off its OS
        pytest.skip(f"{module}.{name} cannot be built here: {exc!r}")
    return backend


class FakeRegistryKeyring(KeyringBackend):
    """FAKE, named like keyrings.alt's Windows registry backend (not a vault): must be refused."""

    priority = 1
    viable = False

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("a plain registry backend must never receive a secret")

    def delete_password(self, service: str, username: str) -> None:
        return None


FakeRegistryKeyring.__module__ = "keyrings.alt.Windows"
FakeRegistryKeyring.__qualname__ = "RegistryKeyring"


@pytest.fixture
def keyring_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Own EDGE_RUNNER_HOME, auto backend choice, and the process keyring put back after."""
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path))
    monkeypatch.delenv("EDGE_RUNNER_SECRET_BACKEND", raising=False)
    monkeypatch.setattr(secrets_module, "_file_store_warned", False)
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.mark.parametrize(
    ("module", "name", "home"), _REAL_BACKENDS, ids=[f"{m}.{n}" for m, n, _ in _REAL_BACKENDS]
)
def test_each_os_vault_backend_is_accepted(
    module: str, name: str, home: str, keyring_sandbox: None
) -> None:
    """Keychain, Credential Locker, Secret Service, libsecret and KWallet count as real keyrings."""
    keyring.set_keyring(_real_backend(module, name))
    store = secret_store(timeout=500 * MS)
    assert store.backend_name == f"keyring:{module}.{name}"


@pytest.mark.parametrize(
    ("module", "name"),
    [("keyring.backends.macOS", "Keyring"), ("keyring.backends.Windows", "WinVaultKeyring")],
)
def test_vault_that_cannot_answer_falls_back_to_files(
    module: str, name: str, keyring_sandbox: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A chosen vault that fails (another OS's here, like a locked Keychain) ends in files."""
    keyring.set_keyring(_real_backend(module, name))
    store = secret_store(timeout=500 * MS)
    with caplog.at_level(logging.WARNING):
        store.set("dev", TOKEN)
    assert store.backend_name.startswith("file:")
    assert store.get("dev") == TOKEN
    assert f"{module}.{name}" in caplog.text
    assert TOKEN not in caplog.text


def test_forced_keyring_that_cannot_answer_raises(
    keyring_sandbox: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EDGE_RUNNER_SECRET_BACKEND=keyring: a failing Keychain is an error, never a silent file."""
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "keyring")
    keyring.set_keyring(_real_backend("keyring.backends.macOS", "Keyring"))
    store = secret_store(timeout=500 * MS)
    with pytest.raises(SecretStoreError, match="forbids the file store"):
        store.set("dev", TOKEN)


def test_windows_chainer_picks_credential_locker_not_registry(
    keyring_sandbox: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chainer of the registry (keyrings.alt) and the Credential Locker uses the Locker."""
    locker = _real_backend("keyring.backends.Windows", "WinVaultKeyring")
    chainer = keyring.backends.chainer.ChainerBackend
    monkeypatch.setattr(chainer, "backends", [FakeRegistryKeyring(), locker])
    keyring.set_keyring(chainer())
    store = secret_store(timeout=500 * MS)
    assert store.backend_name == "keyring:keyring.backends.Windows.WinVaultKeyring"


def test_registry_backend_alone_means_the_file_store(keyring_sandbox: None) -> None:
    """keyrings.alt's registry backend is not a vault: secrets go to the file store instead."""
    keyring.set_keyring(FakeRegistryKeyring())
    store = secret_store(timeout=500 * MS)
    store.set("dev", TOKEN)
    assert store.backend_name.startswith("file:")
    assert store.get("dev") == TOKEN


# -- python -m edge_runner ------------------------------------------------------------------------


def test_python_dash_m_edge_runner_is_the_cli() -> None:
    """`python -m edge_runner` (the Windows-friendly spelling) runs the CLI."""
    run = subprocess.run(
        [sys.executable, "-m", "edge_runner", "--version"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("edge-runner ")


# -- what Windows cannot import -------------------------------------------------------------------

_POSIX_ONLY = {"fcntl", "termios", "pwd", "grp", "resource", "tty", "pty", "posix"}

# Modules Windows cannot import yet, each with the way out. Fixing one fails the test below
# until it is struck from this list, and a new one fails it too.
_KNOWN_WINDOWS_BLOCKERS: list[tuple[str, str]] = []

_FIND_IMPORTS = """
import ast, importlib.util, json, pkgutil, sys
from pathlib import Path
import edge_runner
from edge_runner.cli.main import build_parser

if sys.argv[1] == "parser":  # what every `edge-runner` start loads
    build_parser()
    names = [n for n in sys.modules if n.startswith("edge_runner")]
else:  # every module of the package
    names = [m.name for m in pkgutil.walk_packages(edge_runner.__path__, "edge_runner.")]
found = []
for name in sorted(names):
    spec = importlib.util.find_spec(name)
    if spec is None or not (spec.origin or "").endswith(".py"):
        continue
    for node in ast.parse(Path(spec.origin).read_text()).body:  # module level only
        if isinstance(node, ast.Import):
            found += [[name, a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append([name, node.module])
print(json.dumps(found))
"""


def _top_level_posix_imports(scope: str) -> list[tuple[str, str]]:
    """``(module, POSIX-only module it imports at top level)`` for ``parser`` or ``package``."""
    run = subprocess.run(
        [sys.executable, "-c", _FIND_IMPORTS, scope],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    return [
        (where, module)
        for where, module in json.loads(run.stdout)
        if module.split(".")[0] in _POSIX_ONLY
    ]


def test_the_cli_parser_loads_nothing_posix_only() -> None:
    """Building the parser (every `edge-runner` start) imports no POSIX-only module at top level."""
    assert _top_level_posix_imports("parser") == []


def test_windows_import_blockers_are_the_known_ones() -> None:
    """Only the listed modules import POSIX-only modules at top level (Windows cannot load them)."""
    assert _top_level_posix_imports("package") == _KNOWN_WINDOWS_BLOCKERS
