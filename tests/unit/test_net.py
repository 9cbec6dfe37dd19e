"""What counts as this machine only (plain text and a started `ollama serve` are allowed there)."""

from __future__ import annotations

import pytest

from edge_runner.net import is_loopback


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.9.8.7", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    """Names and addresses of this machine only are loopback."""
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.0.2.1", "lab-server", "localhost.example", "", "[fe80::1]"]
)
def test_other_hosts(host: str) -> None:
    """Wildcards, LAN addresses and any other name are not (nothing is looked up)."""
    assert not is_loopback(host)
