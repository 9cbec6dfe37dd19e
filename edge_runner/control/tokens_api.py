"""Token and user management: ``/v2/tokens`` (scope ``manage``) and ``/v2/users`` (``admin``).

A token's secret is shown once, in the answer that creates it; afterwards only its public id
(a prefix of its hash) identifies it. Revoking a token closes the tunnels of runners that
connected with it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from edge_runner.control.http_common import JSON_OBJECT, read_json_object
from edge_runner.control.registry import ADMIN_SCOPES, SCOPES, TokenInfo, TokenRecord
from edge_runner.control.state import ControlState, runner_id_taken
from edge_runner.errors import ApiProblem, ErrorCode
from edge_runner.protocol import RUNNER_ID_PATTERN
from edge_runner.views import (
    CreatedTokenView,
    CreatedUserView,
    EnrolledRunnerView,
    JSONObject,
    RevokedTokenView,
    TokenSelfView,
    TokenView,
)

__all__ = ["MAX_TOKEN_TTL", "MIN_TOKEN_TTL", "add_token_routes"]

#: bounds of ``expires_in``, seconds: a token that is expired when made is a mistake, and
#: one for longer than 10 years should not expire at all (leave ``expires_in`` out)
MIN_TOKEN_TTL = 1
MAX_TOKEN_TTL = 10 * 365 * 24 * 3600

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@ -]{0,63}")
_USER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

Principal = Callable[[Request, str | None], TokenInfo]


def _record(record: TokenRecord) -> TokenView:
    return {
        "id": record.token_id,
        "name": record.name,
        "scopes": list(record.scopes),
        "kind": record.kind,
        "created_at": record.created_at,
        "revoked": record.revoked,
        "expires_at": record.expires_at,
    }


def _scopes(body: JSONObject, caller: TokenInfo) -> tuple[str, ...]:
    raw = body.get("scopes", ["predict", "read"])
    scopes = [x for x in raw if isinstance(x, str)] if isinstance(raw, list) else []
    if not isinstance(raw, list) or not scopes or len(scopes) != len(raw):
        raise ApiProblem(
            400, ErrorCode.INVALID_ARGUMENT, "`scopes` must be a non-empty list", param="scopes"
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiProblem(
            400,
            ErrorCode.INVALID_ARGUMENT,
            f"unknown scope(s) {', '.join(unknown)}; scopes are: {', '.join(SCOPES)}",
            param="scopes",
        )
    beyond = sorted(set(scopes) - caller.scopes)
    if beyond:
        raise ApiProblem(
            403,
            ErrorCode.MISSING_SCOPE,
            f"a token cannot grant scopes it lacks: {', '.join(beyond)}",
        )
    return tuple(s for s in SCOPES if s in scopes)


def add_token_routes(app: FastAPI, state: ControlState, principal: Principal) -> None:
    """Register the token and user routes."""

    @app.post("/v2/tokens", response_model=JSON_OBJECT)
    async def create_token(request: Request) -> CreatedTokenView:
        caller = principal(request, "manage")
        body = await read_json_object(request, 64 * 1024)
        name = body.get("name", "")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                "`name` must be 1-64 letters, digits or . _ : @ - and spaces",
                param="name",
            )
        scopes = _scopes(body, caller)
        kind = "runner" if scopes == ("runner",) else "pat"
        ttl = body.get("expires_in")
        # NaN fails both comparisons; a huge int compares without turning into a float.
        if ttl is not None and (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL
        ):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                f"`expires_in` must be a number of seconds from {MIN_TOKEN_TTL} to "
                f"{MAX_TOKEN_TTL} (10 years), got {json.dumps(ttl)[:40]}; leave it out for a "
                "token that does not expire",
                param="expires_in",
            )
        expires_at = time.time() + ttl if ttl is not None else None
        token = state.registry.create_token(caller.user_id, name, scopes, kind, expires_at)
        # Not through auth.verify: a token with a tiny expires_in has expired already (a 500
        # that Schemathesis found with expires_in=5e-324).
        return {
            "id": state.registry.token_id(token),
            "token": token,
            "name": name,
            "scopes": list(scopes),
            "kind": kind,
            "expires_at": expires_at,
        }

    @app.get("/v2/tokens", response_model=JSON_OBJECT)
    async def list_tokens(request: Request) -> dict[str, list[TokenView]]:
        caller = principal(request, "manage")
        return {"tokens": [_record(r) for r in state.registry.tokens(caller.user_id)]}

    @app.get("/v2/tokens/self", response_model=JSON_OBJECT)
    async def token_self(request: Request) -> TokenSelfView:
        # Any valid token may ask about itself (doctor, login): never the secret.
        caller = principal(request, None)
        return {
            "id": caller.token_id,
            "name": caller.name,
            "kind": caller.kind,
            "scopes": [s for s in ADMIN_SCOPES if s in caller.scopes],
            "user_id": caller.user_id,
            "expires_at": caller.expires_at,
        }

    @app.delete("/v2/tokens/{token_id}", response_model=JSON_OBJECT)
    async def revoke_token(token_id: str, request: Request) -> RevokedTokenView:
        if token_id == "self":
            # /v2/tokens/self is its own resource (GET only), not a token id this route takes.
            raise StarletteHTTPException(405)
        caller = principal(request, "manage")
        closed = state.revoke_token(caller.user_id, token_id)
        if closed is None:
            raise ApiProblem(404, ErrorCode.UNKNOWN_TOKEN, f"no live token {token_id!r} of yours")
        return {"id": token_id, "revoked": True, "tunnels_closed": closed}

    @app.post("/v2/runners/enroll", response_model=JSON_OBJECT)
    async def enroll_runner(request: Request) -> EnrolledRunnerView:
        caller = principal(request, "runner")
        body = await read_json_object(request, 64 * 1024)
        runner_id = body.get("runner_id")
        if not isinstance(runner_id, str) or not RUNNER_ID_PATTERN.fullmatch(runner_id):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                "`runner_id` is required: 1-128 letters, digits and . _ : @ -, starting with a "
                "letter or digit",
                param="runner_id",
            )
        if caller.kind == "runner":
            raise ApiProblem(
                400,
                ErrorCode.ALREADY_RUNNER_TOKEN,
                "this is already a runner credential; use it as it is",
            )
        if state.registry.runner_owner(runner_id) not in (None, caller.user_id):
            raise ApiProblem(
                403, ErrorCode.PERMISSION_DENIED, runner_id_taken(runner_id), param="runner_id"
            )
        token = state.registry.create_token(
            caller.user_id, f"runner {runner_id}", ("runner",), "runner"
        )
        return {"id": state.registry.token_id(token), "token": token, "runner_id": runner_id}

    @app.post("/v2/users", response_model=JSON_OBJECT)
    async def create_user(request: Request) -> CreatedUserView:
        principal(request, "admin")
        body = await read_json_object(request, 64 * 1024)
        user_id = body.get("id")
        if not isinstance(user_id, str) or not _USER.fullmatch(user_id):
            raise ApiProblem(
                400,
                ErrorCode.INVALID_ARGUMENT,
                "`id` must be 1-64 lowercase letters, digits or . _ -",
                param="id",
            )
        if state.registry.user_exists(user_id):
            raise ApiProblem(409, ErrorCode.USER_EXISTS, f"user {user_id!r} exists already")
        state.registry.create_user(user_id)
        token = state.registry.create_token(user_id, "first-token", SCOPES)
        return {"id": user_id, "token": token, "scopes": list(SCOPES)}
