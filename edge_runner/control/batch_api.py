"""Batch predict: a JSON array of argument objects on a unary method, answered in order.

``POST /v2/models/{id}/{method}`` with ``[{"text": "a"}, {"text": "b"}]`` answers::

    {"results": [{"index": 0, "task_id": "...", "output": ...},
                 {"index": 1, "error": {"code", "message", "type", "status", "param"?}}],
     "failed": 1}

Each item is its own task. They are submitted together (all or none: a batch counts against
``max_queue`` as that many requests, see :meth:`Dispatcher.submit_batch`), so they spread over
the free slots of every runner serving the model and run in parallel on their pools. An item
that fails (a wrong argument, the model raised, its deadline passed) has its error in its place
and the others are still answered; the batch as a whole fails only before any item runs (too
big, the queue is full, the model is loading).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from edge_runner.control.http_common import answer_all, json_kind, submit_batch, usage_json
from edge_runner.control.http_errors import error_type
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.control.tasks import Task, TaskDone
from edge_runner.errors import ApiProblem, ErrorCode, InvalidArgument
from edge_runner.models.signatures import MethodKind, MethodSignature, validate_arguments
from edge_runner.views import JSONObject, JSONValue

__all__ = ["call_batch"]


async def call_batch(
    state: ControlState,
    caller: TokenInfo,
    model_id: str,
    signature: MethodSignature,
    items: list[JSONValue],
    request: Request,
) -> Response:
    """Run ``items`` (the request's JSON array) as one task each and answer them in order.

    Raises:
        ApiProblem: 400 for a streaming method or an empty batch, 413 past ``max_batch``, and
            what :func:`submit_batch` refuses the whole batch with (429, 503).
    """
    method = signature.name
    limit = state.settings.max_batch
    if signature.kind is not MethodKind.UNARY:
        raise ApiProblem(
            400,
            ErrorCode.INVALID_BODY,
            f"{model_id}.{method} streams its output, so it takes one JSON object of keyword "
            "arguments; a batch (a JSON array of them) is for unary methods",
        )
    if not items:
        raise ApiProblem(
            400,
            ErrorCode.INVALID_BODY,
            "the batch is empty: send a JSON array of one or more objects of keyword arguments",
        )
    if len(items) > limit:
        raise ApiProblem(
            413,
            ErrorCode.BATCH_TOO_LARGE,
            f"the batch has {len(items)} items, over the limit of {limit} (the control "
            "plane's --max-batch); split it into smaller batches",
        )
    results: list[bytes] = [b""] * len(items)
    failed = 0
    tasks: list[Task] = []
    indexes: list[int] = []
    for index, item in enumerate(items):
        try:
            args = _arguments(signature, item)
        except InvalidArgument as exc:
            problem = ApiProblem(400, ErrorCode.INVALID_ARGUMENT, str(exc), param=exc.argument)
            results[index] = _error_item(index, None, problem)
            failed += 1
            continue
        tasks.append(state.new_task(caller, model_id, method, json.dumps(args).encode()))
        indexes.append(index)
    submit_batch(state, tasks)
    outcomes = await answer_all(state, tasks, request)
    for index, task, outcome in zip(indexes, tasks, outcomes, strict=True):
        if isinstance(outcome, TaskDone):
            results[index] = b'{"index":%d,"task_id":"%s","output":%s%s}' % (
                index,
                task.task_id.encode(),
                outcome.payload or b"null",
                usage_json(outcome),
            )
            continue
        if isinstance(outcome, ApiProblem):
            problem = outcome
        else:  # a unary task yields no chunks; a runner that sent one broke the protocol
            problem = ApiProblem(
                502, ErrorCode.BAD_RUNNER_ANSWER, "the runner streamed output from a unary method"
            )
        results[index] = _error_item(index, task.task_id, problem)
        failed += 1
    body = b'{"results":[%s],"failed":%d}' % (b",".join(results), failed)
    return Response(body, media_type="application/json")


def _arguments(signature: MethodSignature, item: JSONValue) -> JSONObject:
    """One item's keyword arguments, checked against the method's signature."""
    if not isinstance(item, dict):
        raise InvalidArgument(
            f"a batch item must be a JSON object of keyword arguments, got a JSON {json_kind(item)}"
        )
    return validate_arguments(signature, item)


def _error_item(index: int, task_id: str | None, problem: ApiProblem) -> bytes:
    """A failed item: its index, its task (if it became one) and the error a single call would
    have answered, with that call's HTTP status."""
    error: dict[str, object] = {
        "code": problem.code,
        "message": problem.message,
        "type": error_type(problem.status),
        "status": problem.status,
    }
    if problem.param is not None:
        error["param"] = problem.param
    doc: dict[str, object] = {"index": index}
    if task_id is not None:
        doc["task_id"] = task_id
    doc["error"] = error
    return json.dumps(doc).encode()
