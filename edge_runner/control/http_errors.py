"""HTTP error answers: one JSON shape everywhere, OpenAI-compatible.

``{"error": {"code": "...", "message": "...", "type": "...", "param": ...}}``
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from edge_runner.errors import ApiProblem, ErrorCode

__all__ = [
    "TASK_ERROR_STATUS",
    "UNAUTHENTICATED_MESSAGE",
    "error_body",
    "error_type",
    "problem_answer",
    "problem_response",
]

#: the 401 answer's message, wherever the token is checked
UNAUTHENTICATED_MESSAGE = (
    "missing, invalid, expired or revoked token: send `Authorization: Bearer <token>` "
    '(`eval "$(edge-runner context env)"` puts it in $EDGE_RUNNER_PAT)'
)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
}

#: HTTP status for each TaskError code a runner can send (keyed by the code as it travels).
TASK_ERROR_STATUS: dict[str, int] = {
    ErrorCode.MODEL_ERROR: 500,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_IMPLEMENTED: 501,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
    ErrorCode.MODEL_LOADING: 503,
    ErrorCode.MODEL_UNAVAILABLE: 503,
    ErrorCode.RUNNER_LOST: 502,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.CANCELLED: 409,
    ErrorCode.SLOW_READER: 429,
    ErrorCode.RUNNER_TOO_OLD: 501,
}


def error_type(status: int) -> str:
    """The OpenAI-style ``type`` of an error answered with ``status``."""
    return _TYPES.get(status, "api_error")


def error_body(code: str, message: str, status: int, param: str | None = None) -> bytes:
    """The JSON error document."""
    error = {"code": code, "message": message, "type": error_type(status)}
    if param is not None:
        error["param"] = param
    return json.dumps({"error": error}).encode()


def problem_answer(problem: ApiProblem, headers: dict[str, str] | None = None) -> Response:
    """The JSON error answer for ``problem``, with its ``Retry-After`` and ``X-Task-Id``
    (and ``headers`` besides)."""
    headers = dict(headers or {})
    if problem.retry_after is not None:
        headers["Retry-After"] = str(problem.retry_after)
    if problem.task_id is not None:
        headers["X-Task-Id"] = problem.task_id
    body = error_body(problem.code, problem.message, problem.status, problem.param)
    return Response(body, problem.status, headers=headers, media_type="application/json")


async def problem_response(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`ApiProblem`."""
    assert isinstance(exc, ApiProblem)
    return problem_answer(exc)
