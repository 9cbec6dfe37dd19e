"""What differs between POSIX (Linux, macOS) and Windows: stop signals, child processes, locks.

Stop signals. POSIX: SIGINT (Ctrl-C) and SIGTERM (``kill``, systemd, launchd), through
``loop.add_signal_handler``, so the handler runs on the event loop. SIGHUP is deliberately not
handled: ``nohup edge-runner runner &`` must survive its terminal closing, and a handler would
override nohup's "ignore"; under ``up`` the children sit in their own session and stop through
their lifeline pipe when the supervisor dies. Windows has no SIGTERM from the OS, and asyncio's
``add_signal_handler`` raises ``NotImplementedError`` there: Ctrl-C arrives as SIGINT, Ctrl-Break
and a parent's ``CTRL_BREAK_EVENT`` as SIGBREAK. Those handlers are installed with
``signal.signal`` (they run in the main thread between bytecodes) and hop onto the loop with
``call_soon_threadsafe``, which also wakes a loop waiting for I/O. A closed console, logoff or
shutdown (``CTRL_CLOSE_EVENT`` and friends) leaves no time to drain: Windows ends the process
within seconds, whatever a handler does.

Child processes. ``up`` starts its children apart from the console's Ctrl-C (POSIX: a new
session; Windows: a new process group) and asks them to stop itself: SIGTERM on POSIX,
``CTRL_BREAK_EVENT`` to the child's process group on Windows (the only console event one can
send to one group); after the grace period the caller kills (``TerminateProcess`` on Windows).

Locks. :func:`try_lock` takes a non-blocking exclusive lock on an open file: ``flock`` on POSIX,
``msvcrt.locking`` on its first byte on Windows. Both go away when the process dies.

The module reads ``sys.platform`` when called and uses the ``signal`` module through
``_signal``, so tests run the Windows branches on Linux with a stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import IO, Any, Protocol

__all__ = [
    "child_group_options",
    "install_stop_handlers",
    "is_windows",
    "request_child_stop",
    "stop_signals",
    "try_lock",
    "unlock",
]

logger = logging.getLogger(__name__)

_signal: Any = signal  # swapped for a stand-in by tests of the Windows branch

# Windows values, spelled out because the names exist only there.
_CREATE_NEW_PROCESS_GROUP = 0x00000200
_CTRL_BREAK_EVENT = 1
_SIGBREAK = 21


class _Signalable(Protocol):
    """What ``request_child_stop`` needs: ``asyncio.subprocess.Process`` or ``Popen``."""

    def send_signal(self, sig: int) -> None: ...  # pragma: no cover - a protocol


def is_windows() -> bool:
    """Whether this is Windows (read now, so tests can pretend)."""
    return sys.platform == "win32"


def stop_signals() -> tuple[int, ...]:
    """The signals that ask edge-runner to stop: SIGINT and SIGTERM, or SIGINT and SIGBREAK."""
    if is_windows():
        return (_signal.SIGINT, getattr(_signal, "SIGBREAK", _SIGBREAK))
    return (_signal.SIGINT, _signal.SIGTERM)


def install_stop_handlers(
    loop: asyncio.AbstractEventLoop, on_stop: Callable[[], object]
) -> Callable[[], None]:
    """Call ``on_stop()`` on the loop each time a stop signal arrives.

    Each signal calls it again (the runner drains on the first, cancels on the second, exits on
    the third). Outside the main thread nothing is installed: only that thread gets signals.

    Args:
        loop: the running event loop.
        on_stop: what to call; it runs on ``loop``.

    Returns:
        A function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.debug("not in the main thread: stop signals are left alone")
        return lambda: None
    sigs = stop_signals()
    if not is_windows():
        try:
            for sig in sigs:
                loop.add_signal_handler(sig, on_stop)
        except NotImplementedError:
            pass  # a loop without signal support: fall through to signal.signal
        else:

            def remove() -> None:
                for sig in sigs:
                    with contextlib.suppress(ValueError, RuntimeError):
                        loop.remove_signal_handler(sig)

            return remove
    return _install_with_signal_module(loop, on_stop, sigs)


def _install_with_signal_module(
    loop: asyncio.AbstractEventLoop, on_stop: Callable[[], object], sigs: tuple[int, ...]
) -> Callable[[], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if loop.is_closed():
            # The process is on its way out and nobody will run on_stop: stop the usual way.
            if signum == _signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        loop.call_soon_threadsafe(on_stop)

    previous = {sig: _signal.getsignal(sig) for sig in sigs}
    for sig in sigs:
        _signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            _signal.signal(sig, old if old is not None else _signal.SIG_DFL)

    return restore


def child_group_options() -> dict[str, Any]:
    """Keyword arguments for ``subprocess``/``asyncio`` process creation: a group of its own.

    The console's Ctrl-C then reaches only the supervisor, which decides what to forward.
    """
    if is_windows():
        flag = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", _CREATE_NEW_PROCESS_GROUP)
        return {"creationflags": flag}
    return {"start_new_session": True}


def request_child_stop(proc: _Signalable) -> None:
    """Ask a child started with :func:`child_group_options` to stop (drain), once.

    POSIX: SIGTERM. Windows: ``CTRL_BREAK_EVENT``, which the child sees as SIGBREAK.

    Raises:
        ProcessLookupError: the child is already gone.
    """
    if is_windows():
        proc.send_signal(getattr(_signal, "CTRL_BREAK_EVENT", _CTRL_BREAK_EVENT))
    else:
        proc.send_signal(_signal.SIGTERM)


def try_lock(file: IO[Any]) -> bool:
    """Take an exclusive lock on open ``file`` without waiting; False when another holds it.

    Held until :func:`unlock`, the file is closed, or the process ends.
    """
    if is_windows():
        import msvcrt  # Windows only

        file.seek(0)
        try:
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:  # EACCES / EDEADLOCK: another process holds it
            return False
        return True
    import fcntl  # POSIX only

    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(file: IO[Any]) -> None:
    """Release a lock taken with :func:`try_lock`."""
    if is_windows():
        import msvcrt  # Windows only

        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    import fcntl  # POSIX only

    fcntl.flock(file.fileno(), fcntl.LOCK_UN)
