"""Error codes are one StrEnum, ErrorCode: the strings on the wire, spelled in one place."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from edge_runner.control.openapi_routes import ERRORS
from edge_runner.errors import ErrorCode
from edge_runner.proto import tunnel_pb2 as pb
from tests.conftest import ROOT

_CODES = {code.value for code in ErrorCode}


def _code_literals(path: Path) -> list[str]:
    """``line: "CODE"`` for each string constant in ``path`` that is exactly an error code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in _CODES
    ]


def test_no_error_code_is_spelled_as_a_string_outside_errors_py() -> None:
    """Every error code in the package and the dashboard is an ErrorCode member, not a string."""
    found = []
    for folder in ("edge_runner", "tui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where == "edge_runner/errors.py":
                continue
            found += [f"{where}:{hit}" for hit in _code_literals(path)]
    assert found == []


def test_members_are_the_strings_that_travel() -> None:
    """A member equals its wire string in JSON, in protobuf and in a message."""
    for code in ErrorCode:
        assert code == code.value and code.value in (code.name, code.name.lower())
        assert json.dumps({"code": code}) == json.dumps({"code": code.value})
        assert (
            pb.TaskError(code=code).SerializeToString()
            == pb.TaskError(code=code.value).SerializeToString()
        )
        assert f"{code}" == str(code) == code.value


def test_the_api_documents_only_codes_of_the_enum_each_once() -> None:
    """The OpenAPI table of codes is a view of ErrorCode: every row names a member, once."""
    codes = [doc.code for doc in ERRORS]
    assert all(type(code) is ErrorCode for code in codes)
    assert len(codes) == len(set(codes))
