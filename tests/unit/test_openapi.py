"""The OpenAPI document: complete (every route, every error code), and valid OpenAPI 3.1."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from starlette.routing import Route, WebSocketRoute

from edge_runner.control.api import create_app
from edge_runner.control.config import ControlConfig
from edge_runner.control.http_errors import TASK_ERROR_STATUS
from edge_runner.control.openapi import build_document
from edge_runner.control.openapi_routes import ERRORS, OPERATIONS, WEBSOCKET_PATHS
from edge_runner.control.registry import Registry
from edge_runner.control.state import ControlState
from edge_runner.errors import ErrorCode
from tests.conftest import ROOT

DOCUMENT = build_document("0.0.0")
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def routes(tmp_path: Path) -> Iterator[list[Any]]:
    """The routes of a real control plane app (over an empty registry)."""
    registry = Registry(tmp_path / "control.db")
    app = create_app(ControlState(ControlConfig(data_dir=tmp_path), registry))
    yield list(app.routes)
    registry.close()


def _documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in _METHODS
    }


def test_every_registered_route_is_documented_and_nothing_else(routes: list[Any]) -> None:
    """Each HTTP route and method the app serves is in the document, and each documented one
    exists (HEAD, which Starlette adds to its GET routes, goes with GET)."""
    served = set()
    for route in routes:
        if isinstance(route, WebSocketRoute):
            assert route.path in WEBSOCKET_PATHS, f"undocumented WebSocket route {route.path}"
            continue
        assert isinstance(route, Route), route
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")
        served |= {(method, route.path) for method in methods}
    assert served - _documented() == set(), "routes missing from edge_runner/control/openapi.py"
    assert _documented() - served == set(), "documented routes the app does not serve"


def test_document_is_valid_openapi_3_1() -> None:
    """The document passes the OpenAPI 3.1 meta-schema and each schema in it is valid JSON
    Schema 2020-12."""
    assert DOCUMENT["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(DOCUMENT).validate()
    for schema in DOCUMENT["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_route_documents_server_limits_and_auth() -> None:
    """Every operation lists 431 and 503 (server limits); all but the probes list 401."""
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert {"200", "431", "503"} <= set(op["responses"]), where
            assert "TOO_MANY_CONNECTIONS" in op["responses"]["503"]["description"], where
            if path not in ("/healthz", "/readyz"):
                assert "401" in op["responses"], where
                assert op.get("security") != [], where


def test_error_codes_are_one_line_each_and_task_codes_match_their_status() -> None:
    """Error codes are unique, and each TaskError code a runner sends is documented at the
    status the API answers it with."""
    codes = [e.code for e in ERRORS]
    assert len(codes) == len(set(codes))
    by_code = {e.code: e.status for e in ERRORS}
    assert {code: by_code.get(code) for code in TASK_ERROR_STATUS} == TASK_ERROR_STATUS


def _raised_problems() -> Iterator[tuple[str, int, str]]:
    """(where, status, code) of each ``ApiProblem(<int>, ErrorCode.<CODE>, ...)`` in the
    control plane."""
    for path in sorted((ROOT / "edge_runner" / "control").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            status, code = node.args[0], node.args[1]
            if name != "ApiProblem" or not isinstance(status, ast.Constant):
                continue
            if isinstance(code, ast.Attribute) and getattr(code.value, "id", "") == "ErrorCode":
                yield f"{path.name}:{node.lineno}", status.value, ErrorCode[code.attr].value


def test_every_error_code_the_api_raises_is_documented() -> None:
    """A new ``ApiProblem`` code (or a code at a new status) fails here until ERRORS lists it
    (edge_runner/control/openapi_routes.py)."""
    raised = list(_raised_problems())
    assert len(raised) > 20  # the scan sees the API's errors
    by_code = {e.code: e.status for e in ERRORS}
    missing = [(w, s, c) for w, s, c in raised if by_code.get(c) != s]
    assert missing == []


def test_operation_ids_are_unique_and_links_resolve() -> None:
    """Operation ids are unique, and every OpenAPI link names an existing operation."""
    ids = [op.operation_id for op in OPERATIONS]
    assert len(ids) == len(set(ids))
    for op in OPERATIONS:
        for target, _ in op.links.values():
            assert target in ids, (op.operation_id, target)
