"""The systemd notify protocol (``sd_notify``), spoken directly: no python-systemd needed.

A service started with ``Type=notify`` finds a datagram socket in ``$NOTIFY_SOCKET`` (a path,
or an abstract name written ``@name``) and sends it newline-separated ``KEY=VALUE`` lines:
``READY=1`` once it serves, ``STATUS=...`` for ``systemctl status``, ``STOPPING=1`` when it
begins to stop, and ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC`` microseconds while it is
healthy (``$WATCHDOG_PID``, when set, names the one process the watchdog is meant for). Without
``$NOTIFY_SOCKET`` every call here is a no-op, so the same code runs under a terminal, launchd,
a container or systemd.

The protocol part (:class:`NotifyConfig`, :func:`encode`, :func:`decode`,
:class:`WatchdogPolicy`) does no I/O; :class:`Notifier` only moves bytes.

Children never inherit the socket: :func:`process_notifier`, which every long-running command
calls before it starts anything, removes ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
``WATCHDOG_PID`` from ``os.environ`` (what ``sd_notify(unset_environment=1)`` does). Every
process we spawn (``up``'s control plane and runner, the ``ollama serve`` a runner starts, a
model's own subprocesses) gets a copy of that environment, so none of them can speak for the
service: with ``NotifyAccess=main`` systemd would drop their messages with a warning, and with
``NotifyAccess=all`` a child's ``READY=1`` would mark the service ready before it is. Doing it
once, where the variables are read, covers spawn sites that do not exist yet.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

__all__ = [
    "ENV_NOTIFY_SOCKET",
    "ENV_WATCHDOG_PID",
    "ENV_WATCHDOG_USEC",
    "NotifyConfig",
    "Notifier",
    "WatchdogPolicy",
    "decode",
    "encode",
    "process_notifier",
    "socket_address",
    "strip_environment",
]

logger = logging.getLogger(__name__)

ENV_NOTIFY_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"
_VARIABLES = (ENV_NOTIFY_SOCKET, ENV_WATCHDOG_USEC, ENV_WATCHDOG_PID)

#: ``systemctl status`` shows one line; a long exception message is cut to this many characters
STATUS_MAX = 400


# -- the protocol, without I/O ----------------------------------------------------------------


def socket_address(value: str) -> str | None:
    """The ``AF_UNIX`` address for a ``$NOTIFY_SOCKET`` value, or None when we cannot use it.

    ``/run/systemd/notify`` is a path; ``@name`` is the abstract socket ``\\0name`` (Linux).
    Anything else (``vsock:`` addresses of systemd >= 253 in VMs, relative paths) is not ours
    to speak to, and the caller treats it as unset.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


@dataclass(frozen=True)
class NotifyConfig:
    """What the service manager told this process through its environment.

    Attributes:
        address: the ``AF_UNIX`` address to send to, or None (not under a notify manager).
        watchdog_usec: the watchdog interval for this process in microseconds, or None when
            there is no watchdog or it is meant for another process (``$WATCHDOG_PID``).
        problem: why a set ``$NOTIFY_SOCKET``/``$WATCHDOG_USEC`` was not usable ("" if none).
    """

    address: str | None = None
    watchdog_usec: int | None = None
    problem: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int) -> NotifyConfig:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` for process ``pid``."""
        raw = environ.get(ENV_NOTIFY_SOCKET, "")
        problems = []
        address = socket_address(raw) if raw else None
        if raw and address is None:
            problems.append(f"{ENV_NOTIFY_SOCKET}={raw!r} is not a unix socket path or @name")
        watchdog: int | None = None
        usec = environ.get(ENV_WATCHDOG_USEC, "")
        owner = environ.get(ENV_WATCHDOG_PID, "")
        if usec:
            try:
                watchdog = int(usec)
                if watchdog <= 0:
                    raise ValueError(usec)
                if owner and int(owner) != pid:
                    watchdog = None  # the watchdog belongs to another process (our parent)
            except ValueError:
                watchdog = None
                problems.append(
                    f"ignoring {ENV_WATCHDOG_USEC}={usec!r} ({ENV_WATCHDOG_PID}={owner!r})"
                )
        if address is None:
            watchdog = None  # nowhere to send pings to
        return cls(address, watchdog, "; ".join(problems))

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to talk to."""
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds (pings go at half of it), or None without one."""
        return self.watchdog_usec / 1_000_000 if self.watchdog_usec else None


def encode(fields: Mapping[str, str]) -> bytes:
    """One notify datagram: ``KEY=VALUE`` lines, newline-terminated.

    A value may not span lines (a newline would start a new assignment), so newlines become
    spaces, and ``STATUS`` is cut to :data:`STATUS_MAX` characters.
    """
    lines = []
    for key, value in fields.items():
        if not key or "=" in key or "\n" in key:
            raise ValueError(f"not a notify key: {key!r}")
        text = " ".join(str(value).split("\n"))
        if key == "STATUS" and len(text) > STATUS_MAX:
            text = text[: STATUS_MAX - 1] + "…"
        lines.append(f"{key}={text}\n")
    return "".join(lines).encode()


def decode(data: bytes) -> dict[str, str]:
    """Parse a notify datagram (what systemd does with it; tests use it too)."""
    fields: dict[str, str] = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


class WatchdogPolicy:
    """When to send ``WATCHDOG=1``: every half interval, and only while the daemon is healthy.

    A daemon that turns unhealthy simply stops pinging; once ``interval`` passes without a
    ping, the service manager restarts it. One that recovers pings at once.
    """

    def __init__(self, interval: float | None) -> None:
        """``interval``: the watchdog timeout in seconds, or None for no watchdog."""
        self.period = interval / 2 if interval else None
        self._last: float | None = None

    def due(self, now: float, healthy: bool) -> bool:
        """Whether to ping at monotonic time ``now``; records the ping when it says yes."""
        if self.period is None or not healthy:
            return False
        if self._last is not None and now - self._last < self.period:
            return False
        self._last = now
        return True

    def wait(self, now: float, cap: float) -> float:
        """Seconds until the next ping could be due (at most ``cap``)."""
        if self.period is None:
            return cap
        if self._last is None:
            return min(cap, self.period)
        return max(0.0, min(cap, self._last + self.period - now))


def strip_environment(environ: MutableMapping[str, str]) -> None:
    """Remove the notify variables, so processes spawned from ``environ`` cannot notify."""
    for name in _VARIABLES:
        environ.pop(name, None)


# -- moving the bytes -------------------------------------------------------------------------


class Notifier:
    """Sends notify datagrams to the service manager; every method is a no-op without one.

    Sending never raises: a service manager that went away must not take the daemon with it.
    The first failure is logged as a warning, later ones at DEBUG.
    """

    def __init__(self, config: NotifyConfig | None = None) -> None:
        """Use ``config``, or no service manager at all."""
        self.config = config or NotifyConfig()
        self._sock: socket.socket | None = None
        self._warned = False
        self._stopping = False

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self.config.enabled

    @property
    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None."""
        return self.config.watchdog_interval

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; True when it was sent."""
        address = self.config.address
        if address is None or not fields:
            return False
        data = encode(fields)
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A full receive queue must not stall the event loop: drop and say so instead.
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(data, address)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            logger.log(level, "cannot notify the service manager at %r: %s", address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (and a status line)."""
        return self.notify(READY="1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """``STATUS=text``: the line ``systemctl status`` shows."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1`` (once; later calls only update the status)."""
        if not self.claim_stopping():
            return self.status(status) if status else False
        return self.notify(STOPPING="1", **({"STATUS": status} if status else {}))

    def claim_stopping(self) -> bool:
        """True the first time only: the caller is to send ``STOPPING=1`` (in its own datagram)."""
        first, self._stopping = not self._stopping, True
        return first

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: still alive and healthy."""
        return self.notify(WATCHDOG="1")

    def close(self) -> None:
        """Close the socket (a later send opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@functools.cache
def process_notifier() -> Notifier:
    """This process's notifier, read once from ``os.environ``, which then loses the variables.

    Call it before spawning anything (see the module docstring for why children must not see
    ``$NOTIFY_SOCKET``).
    """
    config = NotifyConfig.from_environ(os.environ, os.getpid())
    strip_environment(os.environ)
    if config.problem:
        logger.warning("service manager notifications: %s", config.problem)
    elif config.enabled:
        logger.debug(
            "notifying the service manager (watchdog %s)",
            f"{config.watchdog_interval:g} s" if config.watchdog_interval else "off",
        )
    return Notifier(config)
