"""`edge-runner dashboard` and `python -m edge_runner_tui` as a user runs them: in a real
pseudo-terminal, with nothing running (the banner says what to run), with bad options, and
without Textual."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import MS, ROOT
from tests.integration.test_cli import run_cli


def _read_until(fd: int, needle: bytes, within: float) -> bytes:
    """Read the terminal until ``needle`` shows (a screen is drawn in pieces)."""
    import select

    seen = b""
    deadline = time.monotonic() + within
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not shown; the screen had {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen


@pytest.mark.parametrize("command", [["-m", "edge_runner", "dashboard"], ["-m", "edge_runner_tui"]])
def test_it_opens_says_what_to_run_and_q_quits(command: list[str]) -> None:
    """Nothing runs here: the banner names `edge-runner up`; q leaves with status 0 and the
    terminal restored (the alternate screen is left)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execvpe(sys.executable, [sys.executable, *command], dict(os.environ, TERM="xterm"))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        _read_until(fd, b"edge-runner up", 30_000 * MS)
        os.write(fd, b"q")
        tail = _read_until(fd, b"\x1b[?1049l", 10_000 * MS)  # leaves the alternate screen
        assert tail
        deadline = time.monotonic() + 10_000 * MS
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the dashboard did not exit after q"
            time.sleep(10 * MS)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.mark.parametrize("command", [["-m", "edge_runner", "dashboard"], ["-m", "edge_runner_tui"]])
def test_without_a_terminal_it_refuses_at_once(command: list[str]) -> None:
    """From a script (no tty): a one-line error and status 2, not a process spinning forever."""
    result = subprocess.run(
        [sys.executable, *command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30_000 * MS,
    )
    assert result.returncode == 2
    assert (
        "the dashboard draws in a terminal, and stdin and stderr are not terminals" in result.stderr
    )
    assert "edge-runner status" in result.stderr and "Traceback" not in result.stderr


def test_bad_options_get_a_usage_error() -> None:
    """An unknown option: usage and status 2, no traceback."""
    result = run_cli("dashboard", "--refresh", "fast")
    assert result.returncode == 2
    assert "unrecognized arguments: --refresh fast" in result.stderr
    assert "Traceback" not in result.stderr
    module = subprocess.run(
        [sys.executable, "-m", "edge_runner_tui", "--bogus"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert module.returncode == 2 and "--bogus" in module.stderr


def test_without_textual_it_says_what_to_install() -> None:
    """Textual missing (a base install): one line naming the extra, status 2 (an error)."""
    code = (
        "import sys; sys.modules['textual'] = None\n"
        "from edge_runner.cli.main import main\n"
        "sys.exit(main(['dashboard']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "pip install 'edge-runner[tui]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_options() -> None:
    """--help names --context, --runner and --allow-actions."""
    result = run_cli("dashboard", "--help")
    assert result.returncode == 0
    for option in ("--context", "--runner", "--allow-actions"):
        assert option in result.stdout
