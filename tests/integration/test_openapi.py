"""GET /openapi.json on a real control plane, and the bugs fuzzing it found (kept fixed here)."""

from __future__ import annotations

import httpx

from edge_runner._version import __version__
from edge_runner.backends.mcp_server import MCPBackend
from edge_runner.control.openapi import build_document
from tests.conftest import ROOT, Stack


def _token(stack: Stack, scopes: list[str]) -> dict[str, str]:
    r = httpx.post(
        f"{stack.api_base}/v2/tokens", headers=stack.headers, json={"name": "t", "scopes": scopes}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_openapi_json_needs_a_valid_token(stack: Stack) -> None:
    """Without a token, or with a wrong one, the schema is a 401 in the error shape."""
    for headers in ({}, {"Authorization": "Bearer er_pat_nope"}):
        r = httpx.get(f"{stack.api_base}/openapi.json", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "UNAUTHENTICATED"


def test_any_valid_token_gets_the_whole_schema(stack: Stack) -> None:
    """A token of any scope (a runner token too) reads the document build_document makes."""
    for scopes in (["read"], ["runner"], ["predict", "read", "manage", "runner"]):
        r = httpx.get(f"{stack.api_base}/openapi.json", headers=_token(stack, scopes))
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == build_document(__version__)
    assert "/v2/models/{model_id}/{method}" in r.json()["paths"]


def test_tiny_expires_in_is_a_400_not_a_500(stack: Stack) -> None:
    """A token that would expire before its answer is written is refused with the bounds, not
    a 500 (Schemathesis found this with expires_in=5e-324)."""
    r = httpx.post(
        f"{stack.api_base}/v2/tokens",
        headers=stack.headers,
        json={"name": "brief", "expires_in": 5e-324},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "expires_in"
    assert "from 1 to" in r.json()["error"]["message"]


def test_limit_with_a_non_ascii_digit_is_a_400(stack: Stack) -> None:
    """`?limit=²` passes str.isdigit() but not int(): a 400 naming `limit`, not a 500."""
    for limit in ("²", "٣"):
        r = httpx.get(f"{stack.api_base}/v2/tasks", params={"limit": limit}, headers=stack.headers)
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "limit"


def test_405_allows_every_method_of_the_resource(stack: Stack) -> None:
    """A 405 lists all the methods its path takes (GET and POST /v2/tokens are two routes),
    and /v2/tokens/self is GET only (not a token id for DELETE /v2/tokens/{token_id})."""
    r = httpx.request("PUT", f"{stack.api_base}/v2/tokens", headers=stack.headers)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    r = httpx.delete(f"{stack.api_base}/v2/tokens/self", headers=stack.headers)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_a_hosted_mcp_servers_bare_text_answer_says_it_is_text(stack: Stack) -> None:
    """The MCP SDK answers a POST without a JSON Content-Type with a bare string and no
    Content-Type; the control plane passes it on as text/plain rather than untyped."""
    stack.start_runner(backend=MCPBackend(ROOT / "examples" / "mcp"))
    r = httpx.post(
        f"{stack.api_base}/v2/mcp/files",
        headers={**stack.headers, "Accept": "application/json, text/event-stream"},
        content=b"{}",
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == "Invalid Content-Type header"
    assert r.headers["x-task-id"]
