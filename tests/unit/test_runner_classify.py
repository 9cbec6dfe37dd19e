"""The runner's one retry-or-give-up decision, for every kind of exception a connection
attempt can raise (no sockets, no event loop)."""

from __future__ import annotations

import ssl

import grpc
import httpx
import pytest
import websockets
from websockets.datastructures import Headers
from websockets.http11 import Response

from edge_runner.errors import (
    ConfigError,
    Forbidden,
    ProtocolError,
    TunnelError,
    Unauthorized,
    VersionMismatch,
)
from edge_runner.runner.connection import Fatal, Retry, classify, describe

INFO = "http://cp.example:7070/v2/info"


def _http(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", INFO)
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


def _grpc(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def _ws(status: int) -> websockets.InvalidStatus:
    return websockets.InvalidStatus(Response(status, "refused", Headers()))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(_http(401), Unauthorized, id="discovery-401"),
        pytest.param(_http(403), Forbidden, id="discovery-403"),
        pytest.param(_grpc(grpc.StatusCode.UNAUTHENTICATED, "no"), Unauthorized, id="grpc-401"),
        pytest.param(
            _grpc(grpc.StatusCode.PERMISSION_DENIED, "Received http2 header with status: 403"),
            Forbidden,
            id="grpc-403",
        ),
        pytest.param(_ws(401), Unauthorized, id="ws-401"),
        pytest.param(_ws(403), Forbidden, id="ws-403"),
        pytest.param(Unauthorized(401, "UNAUTHENTICATED", "no"), Unauthorized, id="ours-401"),
        pytest.param(Forbidden(403, "PERMISSION_DENIED", "not yours"), Forbidden, id="ours-403"),
    ],
)
def test_refusals_are_fatal_and_alike_on_both_transports(
    exc: Exception, expected: type[Exception]
) -> None:
    """401/UNAUTHENTICATED is Unauthorized and 403/PERMISSION_DENIED is Forbidden, whichever
    transport or discovery said it; retrying cannot change either."""
    decision = classify(exc)
    assert isinstance(decision, Fatal) and type(decision.error) is expected


def test_a_discovery_refusal_names_the_control_plane() -> None:
    """The message says which control plane refused and what to do."""
    decision = classify(_http(403))
    assert isinstance(decision, Fatal)
    message = str(decision.error)
    assert "http://cp.example:7070" in message and "/v2/info" in message
    assert "log in again" in message


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(httpx.ConnectError("refused"), id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
        pytest.param(_http(502), id="http-502"),
        pytest.param(_http(404), id="http-404"),
        pytest.param(ConnectionRefusedError(111, "refused"), id="oserror"),
        pytest.param(ssl.SSLError("bad record"), id="ssl"),
        pytest.param(TimeoutError(), id="timeouterror"),
        pytest.param(TunnelError("reset"), id="tunnel"),
        pytest.param(TunnelError("/v2/info answered 200 with text/html"), id="not-the-info"),
        pytest.param(ProtocolError("garbage"), id="protocol"),
        pytest.param(VersionMismatch("2.0 vs 1.2"), id="version-mismatch"),
        pytest.param(_grpc(grpc.StatusCode.UNAVAILABLE, "down"), id="grpc-unavailable"),
        pytest.param(_grpc(grpc.StatusCode.INTERNAL, "Internal error from Core"), id="grpc-13"),
        pytest.param(_ws(502), id="ws-502"),
        pytest.param(websockets.ConnectionClosedError(None, None), id="ws-closed"),
    ],
)
def test_outages_are_retried(exc: Exception) -> None:
    """Unreachable, reset, timed out, garbled or a proxy's page: retried, with a reason."""
    decision = classify(exc)
    assert isinstance(decision, Retry) and decision.reason


def test_a_bad_websocket_address_is_a_fatal_config_error() -> None:
    """A tunnel URL that cannot be a WebSocket address will not become one by retrying."""
    decision = classify(websockets.InvalidURI("ws//nowhere", "not a valid URI"))
    assert isinstance(decision, Fatal) and isinstance(decision.error, ConfigError)


def test_anything_else_is_a_bug_and_fatal_as_it_is() -> None:
    """An exception outside the tree and the network errors surfaces unchanged."""
    bug = KeyError("tunnel")
    decision = classify(bug)
    assert isinstance(decision, Fatal) and decision.error is bug


def test_describe_names_the_cause() -> None:
    """A connect failure reads as such; anything else by its type and message."""
    assert (
        describe(httpx.ConnectError("[Errno 111] refused")) == "cannot connect: [Errno 111] refused"
    )
    assert describe(TunnelError("reset")) == "TunnelError: reset"
    assert describe(TimeoutError()) == "TimeoutError"
