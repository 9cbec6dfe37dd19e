"""Small facts about addresses, shared by the CLI, the doctor and the backends."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) names this machine
    only: ``localhost`` or an address in 127.0.0.0/8 or ::1. Nothing is looked up."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
