"""Loaded by every Python process of the offline tests (through PYTHONPATH): an audit hook that
appends each non-loopback address the process tries to reach or resolve to
``$EDGE_RUNNER_NETAUDIT_LOG``, one ``pid event address`` line each.

The network namespace makes such an attempt fail; this makes it visible even when the code that
tried swallows the failure (a silent update check would). Sockets opened in C (grpc, uvloop)
raise no audit events: the namespace alone covers those. Addresses in
``$EDGE_RUNNER_NETAUDIT_ALLOW`` (comma-separated) are the configured control plane's.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

_LOG = os.environ.get("EDGE_RUNNER_NETAUDIT_LOG", "")
_ALLOW = {a for a in os.environ.get("EDGE_RUNNER_NETAUDIT_ALLOW", "").split(",") if a}
_EVENTS = {
    "socket.connect": 1,
    "socket.sendto": 1,
    "socket.getaddrinfo": 0,
    "socket.gethostbyname": 0,
    "socket.gethostbyaddr": 0,
}


def _local(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): a wildcard to bind
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%")[0]
    if host in ("", "localhost") or host in _ALLOW:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolving it is a DNS query
    return address.is_loopback or address.is_unspecified


def _hook(event: str, args: tuple[Any, ...]) -> None:
    where = _EVENTS.get(event)
    if where is None or len(args) <= where:
        return
    target = args[where]
    if isinstance(target, tuple) and target:  # (host, port, ...) of AF_INET/AF_INET6
        host, rest = target[0], target[1:2]
    elif isinstance(target, str | bytes) and event.startswith("socket.get"):
        host, rest = target, args[1:2] if event == "socket.getaddrinfo" else ()
    else:
        return  # AF_UNIX paths and the like
    if _local(host):
        return
    line = f"{os.getpid()} {event} {host!r} {rest!r} {' '.join(sys.argv)[:120]}\n"
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


if _LOG:
    sys.addaudithook(_hook)
