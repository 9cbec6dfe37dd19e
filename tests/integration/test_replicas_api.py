"""GET /readyz (the readiness probe) and GET /v2/replicas / `edge-runner replicas` on an
embedded control plane: one replica, this process, with its own registry and bus."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from edge_runner.cli.main import main
from edge_runner.client import Client
from edge_runner.errors import Forbidden
from tests.conftest import HELLO, Stack, wait_for


def test_readyz_needs_no_token_and_lists_its_checks(stack: Stack) -> None:
    answer = httpx.get(f"{stack.api_base}/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {"serving": "ok", "registry": "ok", "bus": "ok"},
    }
    # a bad token does not matter either: a probe carries none
    bad = httpx.get(f"{stack.api_base}/readyz", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 200


def test_an_embedded_control_plane_is_its_only_replica(stack: Stack) -> None:
    before = time.time()
    with Client(stack.api_base, stack.token) as client:
        (only,) = client.replicas()
        assert only["self"] is True
        assert only["id"] == socket.gethostname()
        assert only["api_base"] == stack.api_base
        assert only["tunnel"].endswith(f":{stack.plane.grpc_port}")
        assert (only["runners"], only["tasks"]) == (0, 0)
        assert (only["registry"], only["bus"]) == ("ok", "ok")
        assert only["started_at"] <= before <= only["last_seen"]
        stack.start_runner(HELLO)
        wait_for(lambda: client.replicas()[0]["runners"] == 1, "the runner to count")


def test_replicas_needs_the_read_scope(stack: Stack) -> None:
    with Client(stack.api_base, stack.token) as admin:
        runner_only = admin.create_token("tunnel-only", ["runner"])["token"]
    with Client(stack.api_base, runner_only) as client, pytest.raises(Forbidden):
        client.replicas()
    assert httpx.get(f"{stack.api_base}/v2/replicas").status_code == 401


def test_replicas_command_prints_a_table_and_json(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", stack.api_base)
    monkeypatch.setenv("EDGE_RUNNER_PAT", stack.token)
    assert main(["replicas", "-o", "json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert only["id"] == socket.gethostname() and only["self"] is True
    assert main(["replicas"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "REPLICA",
        "API",
        "TUNNEL",
        "RUNNERS",
        "TASKS",
        "REGISTRY",
        "BUS",
        "UP",
    ]
    assert row.split()[:3] == [socket.gethostname(), "*", stack.api_base]
