"""TLS on the HTTP API, the gRPC tunnel and the WebSocket tunnel, with a private CA."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
from cryptography import x509

from edge_runner.client import Client
from edge_runner.control.tls import fingerprint, self_signed
from edge_runner.runner.transport import TransportKind
from tests.conftest import MS, Stack, wait_for
from tests.integration.test_cli import run_cli


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
    wait_for(
        lambda: "CERTIFICATE_VERIFY_FAILED" in running.runner.connection.last_error, "the refusal"
    )
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


def test_a_wildcard_host_certificate_names_this_machines_addresses(tmp_path: Path) -> None:
    """--host 0.0.0.0: the certificate names the interfaces' addresses LAN clients dial."""
    files = self_signed(tmp_path, ["0.0.0.0"])
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert "0.0.0.0" not in ips and {"127.0.0.1", "::1"} <= ips
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET:
                assert addr.address in ips, addr


def test_a_reused_certificate_for_another_host_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Started again with a --host the kept certificate lacks: a warning says how to fix it."""
    self_signed(tmp_path, ["127.0.0.1"])
    caplog.clear()
    self_signed(tmp_path, ["127.0.0.1"])
    assert not caplog.records
    self_signed(tmp_path, ["198.51.100.7"])
    assert "does not name 198.51.100.7" in caplog.text and "Remove that folder" in caplog.text


def _login(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["login", stack.api_base, "--context", "lab", "--user-id", "admin", "--token-stdin"]
    return run_cli(*argv, *extra, stdin=stack.token + "\n")


def test_login_trusts_a_private_ca_and_keeps_it_in_the_context(tls_stack: Stack) -> None:
    """login --ca-file verifies against the CA and saves it as the context's ca_file."""
    ca = tls_stack.ca  # type: ignore[attr-defined]
    refused = _login(tls_stack)
    assert refused.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert "Nothing was saved" in refused.stderr
    missing = _login(tls_stack, "--ca-file", str(ca) + ".nope")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    ok = _login(tls_stack, "--ca-file", str(ca))
    assert ok.returncode == 0, ok.stderr
    shown = json.loads(run_cli("context", "show", "lab", "-o", "json").stdout)
    assert shown["extra"]["ca_file"] == str(ca)
    models = run_cli("models", "-o", "json")  # the saved ca_file is used from now on
    assert models.returncode == 0, models.stderr
