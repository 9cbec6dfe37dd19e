"""TLS on the HTTP API, the gRPC tunnel and the WebSocket tunnel, with a private CA."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest

from edge_runner.client import Client
from edge_runner.control.tls import fingerprint, self_signed
from edge_runner.runner.transport import TransportKind
from tests.conftest import MS, Stack, wait_for
from tests.integration.test_cli import run_cli


@pytest.fixture
def tls_stack(stack: Stack, tmp_path: Path) -> Stack:
    """A control plane serving TLS with a self-signed private CA."""
    files = self_signed(tmp_path / "tls-data", ["127.0.0.1"])
    stack.stop_control()
    stack.start_control(tls_cert=files.cert, tls_key=files.key)
    stack.ca = files.ca  # type: ignore[attr-defined]
    return stack


@pytest.mark.parametrize("transport", [TransportKind.GRPC, TransportKind.WS], ids=["grpc", "ws"])
def test_runner_and_client_over_tls(tls_stack: Stack, transport: TransportKind) -> None:
    """HTTPS API, and a runner tunnel over TLS (gRPC or wss), verified against the CA."""
    ca = tls_stack.ca  # type: ignore[attr-defined]
    assert tls_stack.api_base.startswith("https://127.0.0.1:")
    tls_stack.start_runner(transport=transport, ca_file=ca)
    with Client(tls_stack.api_base, tls_stack.token, ca_file=str(ca)) as client:
        assert client.predict("hello", text="tls") == "Hello, tls!"
        assert client.info()["tunnel"]["tls"] is True


def test_untrusted_certificate_is_refused(tls_stack: Stack) -> None:
    """Without the private CA, clients and runners refuse the certificate."""
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_stack.api_base}/healthz")
    running = tls_stack.start_runner(wait=False, backoff_initial=20 * MS, backoff_cap=50 * MS)
    wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in running.runner._last_error, "the refusal")
    assert not running.runner.connected


def test_plain_text_to_the_network_needs_insecure(tmp_path: Path) -> None:
    """control refuses plain text on a non-loopback address unless --insecure."""
    refused = run_cli("control", "--host", "0.0.0.0", "--port", "0", "--grpc-port", "0")
    assert refused.returncode == 2
    assert "--insecure" in refused.stderr and "--tls-self-signed" in refused.stderr
    env = dict(os.environ, EDGE_RUNNER_API_BASE="http://192.0.2.1:7070", EDGE_RUNNER_PAT="x")
    runner = run_cli("runner", "examples/hello", env=env)
    assert runner.returncode == 2 and "refusing plain text" in runner.stderr


def test_self_signed_material_is_reused_and_private(tmp_path: Path) -> None:
    """The CA and certificate are made once; the key is 0600; the fingerprint is stable."""
    first = self_signed(tmp_path, ["127.0.0.1"])
    again = self_signed(tmp_path, ["127.0.0.1"])
    assert first == again
    assert first.key.stat().st_mode & 0o777 == 0o600
    print_ = fingerprint(first.ca.read_bytes())
    assert print_.startswith("SHA256:") and len(print_.split(":")) == 33
    ssl.create_default_context(cafile=str(first.ca)).load_cert_chain(first.cert, first.key)
