"""Scoped tokens, revocation and user isolation on the control plane."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from edge_runner.control.registry import Registry
from edge_runner.errors import Unauthorized
from tests.conftest import MS, Stack, wait_for, write_model


def _token(stack: Stack, scopes: list[str], name: str = "t") -> dict[str, object]:
    r = httpx.post(
        f"{stack.api_base}/v2/tokens", headers=stack.headers, json={"name": name, "scopes": scopes}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _auth(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_scope_is_403_naming_it(hello_stack: Stack) -> None:
    """A read-only token lists models but cannot call them: 403 names the scope."""
    reader = _token(hello_stack, ["read"])
    assert str(reader["token"]).startswith("er_pat_")
    models = httpx.get(f"{hello_stack.api_base}/v2/models", headers=_auth(reader["token"]))
    assert models.status_code == 200
    call = httpx.post(
        f"{hello_stack.api_base}/v2/models/hello/predict",
        headers=_auth(reader["token"]),
        json={"text": "x"},
    )
    assert call.status_code == 403
    assert call.json()["error"]["code"] == "MISSING_SCOPE"
    assert "'predict'" in call.json()["error"]["message"]


@pytest.mark.parametrize("scheme", ["Key", "key", "Bearer"])
def test_clarifai_key_scheme_is_accepted_beside_bearer(hello_stack: Stack, scheme: str) -> None:
    """`Authorization: Key <token>` (Clarifai clients' form) authenticates like Bearer."""
    token = str(_token(hello_stack, ["predict", "read"])["token"])
    r = httpx.post(
        f"{hello_stack.api_base}/v2/models/hello/predict",
        headers={"Authorization": f"{scheme} {token}"},
        json={"text": "x"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["output"] == "Hello, x!"
    other = httpx.get(
        f"{hello_stack.api_base}/v2/models", headers={"Authorization": f"Token {token}"}
    )
    assert other.status_code == 401


def test_runner_token_serves_but_cannot_call(stack: Stack) -> None:
    """A runner token (er_rt_) connects a runner; it cannot call models or mint tokens."""
    runner_token = _token(stack, ["runner"], "runner-1")
    assert str(runner_token["token"]).startswith("er_rt_") and runner_token["kind"] == "runner"
    stack.start_runner(token=str(runner_token["token"]))
    r = httpx.post(
        f"{stack.api_base}/v2/models/hello/predict",
        headers=_auth(runner_token["token"]),
        json={"text": "x"},
    )
    assert r.status_code == 403
    ok = httpx.post(
        f"{stack.api_base}/v2/models/hello/predict", headers=stack.headers, json={"text": "x"}
    )
    assert ok.json()["output"] == "Hello, x!"


def test_predict_token_cannot_connect_a_runner(stack: Stack) -> None:
    """A token without the runner scope is refused on the tunnel."""
    caller = _token(stack, ["predict", "read"])
    running = stack.start_runner(token=str(caller["token"]), wait=False)
    with pytest.raises(Unauthorized):
        running.task.result(10_000 * MS)


def test_tokens_cannot_grant_more_than_they_have(stack: Stack) -> None:
    """A manage token without predict cannot mint a predict token; unknown scopes are 400."""
    manager = _token(stack, ["manage"])
    r = httpx.post(
        f"{stack.api_base}/v2/tokens",
        headers=_auth(manager["token"]),
        json={"name": "x", "scopes": ["predict"]},
    )
    assert r.status_code == 403
    bad = httpx.post(
        f"{stack.api_base}/v2/tokens", headers=stack.headers, json={"name": "x", "scopes": ["god"]}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "scopes"


def test_list_and_revoke(hello_stack: Stack) -> None:
    """Listed tokens show ids, never secrets; a revoked token is 401 at once."""
    made = _token(hello_stack, ["predict", "read"], "laptop")
    listed = httpx.get(f"{hello_stack.api_base}/v2/tokens", headers=hello_stack.headers).json()
    assert made["id"] in [t["id"] for t in listed["tokens"]]
    assert str(made["token"]) not in str(listed)
    url = f"{hello_stack.api_base}/v2/models/hello/predict"
    assert httpx.post(url, headers=_auth(made["token"]), json={"text": "x"}).status_code == 200
    revoked = httpx.delete(
        f"{hello_stack.api_base}/v2/tokens/{made['id']}", headers=hello_stack.headers
    )
    assert revoked.status_code == 200
    after = httpx.post(url, headers=_auth(made["token"]), json={"text": "x"})
    assert after.status_code == 401
    again = httpx.delete(
        f"{hello_stack.api_base}/v2/tokens/{made['id']}", headers=hello_stack.headers
    )
    assert again.status_code == 404


def test_revoked_runner_token_closes_its_tunnel(stack: Stack) -> None:
    """Revoking the token a runner connected with ends its tunnel; the runner stops for good."""
    runner_token = _token(stack, ["runner"])
    running = stack.start_runner(token=str(runner_token["token"]))
    r = httpx.delete(f"{stack.api_base}/v2/tokens/{runner_token['id']}", headers=stack.headers)
    assert r.json()["tunnels_closed"] == 1
    with pytest.raises(Unauthorized):
        running.task.result(5000 * MS)
    models = httpx.get(f"{stack.api_base}/v2/models", headers=stack.headers).json()["models"]
    assert models[0]["status"] == "offline"


def test_users_see_and_serve_only_their_own(stack: Stack, tmp_path: Path) -> None:
    """Two users with a model of the same id: each reaches only their own runner and records."""
    r = httpx.post(f"{stack.api_base}/v2/users", headers=stack.headers, json={"id": "bob"})
    assert r.status_code == 200
    bob = str(r.json()["token"])
    bobs_model = write_model(
        tmp_path,
        "hello",
        "    @ModelClass.method\n"
        "    def predict(self, text: str) -> str:\n"
        "        return 'bob:' + text\n",
    )
    stack.start_runner(bobs_model, token=bob, runner_id="bobs-runner")
    stack.start_runner(runner_id="admins-runner")
    url = f"{stack.api_base}/v2/models/hello/predict"
    assert httpx.post(url, headers=_auth(bob), json={"text": "x"}).json()["output"] == "bob:x"
    assert (
        httpx.post(url, headers=stack.headers, json={"text": "x"}).json()["output"] == "Hello, x!"
    )
    bobs_runners = httpx.get(f"{stack.api_base}/v2/runners", headers=_auth(bob)).json()["runners"]
    assert [r["id"] for r in bobs_runners] == ["bobs-runner"]
    admins = httpx.get(f"{stack.api_base}/v2/runners", headers=stack.headers).json()["runners"]
    assert [r["id"] for r in admins] == ["admins-runner"]
    bobs_models = httpx.get(f"{stack.api_base}/v2/models", headers=_auth(bob)).json()["models"]
    assert [m["methods"][0]["name"] for m in bobs_models] == ["predict"]
    assert (
        httpx.post(f"{stack.api_base}/v2/users", headers=_auth(bob), json={"id": "eve"}).status_code
        == 403
    )


def test_walking_skeleton_database_upgrades_in_place(tmp_path: Path) -> None:
    """A registry written by schema 1 opens with the current code and keeps its admin token."""
    from edge_runner.control import registry as reg

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for statement in reg._MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    token = "er_pat_" + "x" * 43
    conn.execute("INSERT INTO users VALUES ('admin', 0)")
    conn.execute(
        "INSERT INTO tokens (hash, user_id, name, scopes, created_at) VALUES (?, ?, ?, ?, 0)",
        (reg.hash_token(token), "admin", "bootstrap-admin", "admin,predict,runner,read"),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Registry(db) as registry:
        assert registry.schema_version == len(reg._MIGRATIONS)
        info = registry.lookup_token(reg.hash_token(token))
        assert info is not None and {"manage", "predict", "read", "runner"} <= info.scopes
        assert registry.tokens("admin")[0].kind == "pat"


def test_runner_enrolment_reuses_and_renews_its_credential(stack: Stack) -> None:
    """A user token is traded once for an er_rt_ credential, reused, and renewed if refused."""
    from edge_runner.daemons.enroll import runner_credential

    first = runner_credential(stack.api_base, stack.token, "r-enrol")
    assert first.startswith("er_rt_")
    assert runner_credential(stack.api_base, stack.token, "r-enrol") == first
    listed = httpx.get(f"{stack.api_base}/v2/tokens", headers=stack.headers).json()["tokens"]
    mine = [t for t in listed if t["name"] == "runner r-enrol"]
    assert len(mine) == 1 and mine[0]["kind"] == "runner"
    assert runner_credential("http://127.0.0.1:9", stack.token, "r-enrol") == first  # offline
    httpx.delete(f"{stack.api_base}/v2/tokens/{mine[0]['id']}", headers=stack.headers)
    renewed = runner_credential(stack.api_base, stack.token, "r-enrol")
    assert renewed.startswith("er_rt_") and renewed != first
    assert runner_credential(stack.api_base, renewed, "other") == renewed  # runner tokens pass


def test_expired_token_is_401(hello_stack: Stack) -> None:
    """A token past its expiry is refused like a revoked one, even after it was cached."""
    import time

    r = httpx.post(
        f"{hello_stack.api_base}/v2/tokens",
        headers=hello_stack.headers,
        json={"name": "brief", "scopes": ["read"], "expires_in": 1},  # the shortest allowed
    )
    brief = r.json()
    url = f"{hello_stack.api_base}/v2/models"
    assert httpx.get(url, headers=_auth(brief["token"])).status_code == 200  # now cached
    deadline = float(brief["expires_at"])
    wait_for(lambda: time.time() > deadline, "the expiry time")
    expired = httpx.get(url, headers=_auth(brief["token"]))
    assert expired.status_code == 401 and "revoked" in expired.json()["error"]["message"]
    bad = httpx.post(
        f"{hello_stack.api_base}/v2/tokens",
        headers=hello_stack.headers,
        json={"name": "x", "expires_in": -1},
    )
    assert bad.status_code == 400
