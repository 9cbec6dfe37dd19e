"""Which control-plane processes serve this API, and whether this one may take traffic.

- ``GET /readyz`` (no token): 200 ``{"status": "ready", "checks": {...}}`` while this process
  can serve requests, else 503 (``UNAVAILABLE``, with ``Retry-After``) naming what is wrong: it
  is stopping, or its registry or task bus does not answer. A load balancer or a Kubernetes
  readiness probe takes a replica out of rotation on it; ``/healthz`` (liveness) stays 200 so
  nothing restarts a replica that is only waiting for its database.
- ``GET /v2/replicas`` (scope ``read``): the live replicas (one entry for an embedded control
  plane): id, addresses, runners held, tasks fronted, and the health of its registry and bus.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge_runner.control.http_common import JSON_OBJECT
from edge_runner.control.registry import TokenInfo
from edge_runner.control.state import ControlState
from edge_runner.errors import ApiProblem, ErrorCode
from edge_runner.views import ReadinessView, ReplicaView

__all__ = ["add_replica_routes", "readiness", "this_replica"]

#: what a load balancer should wait before asking a replica that is not ready again
RETRY_AFTER_S = 2


def replica_id(state: ControlState) -> str:
    """This process' replica id: ``--replica-id``, else the host name."""
    return state.settings.replica_id or socket.gethostname()


async def readiness(state: ControlState) -> dict[str, str]:
    """Each check's state: ``ok``, or why it is not."""
    checks = {"serving": "stopping" if state.closing else "ok"}
    checks["registry"] = await state.registry_health()
    checks["bus"] = await state.bus_health()
    return checks


def this_replica(state: ControlState, checks: dict[str, str]) -> ReplicaView:
    """This process as one of ``GET /v2/replicas``."""
    dispatcher = state.dispatcher
    return {
        "id": replica_id(state),
        "api_base": state.api_base,
        "tunnel": state.grpc_address,
        "runners": len(dispatcher.links),
        "tasks": len(dispatcher.tasks),
        "registry": checks["registry"],
        "bus": checks["bus"],
        "started_at": state.started,
        "last_seen": time.time(),
        "self": True,
    }


def add_replica_routes(
    app: FastAPI, state: ControlState, principal: Callable[[Request, str | None], TokenInfo]
) -> None:
    """Register ``/readyz`` and ``/v2/replicas``."""

    @app.get("/readyz", response_model=JSON_OBJECT)
    async def readyz() -> Response:
        checks = await readiness(state)
        problems = [f"{name}: {why}" for name, why in checks.items() if why != "ok"]
        if problems:
            raise ApiProblem(
                503,
                ErrorCode.UNAVAILABLE,
                "not ready (" + "; ".join(problems) + ")",
                retry_after=RETRY_AFTER_S,
            )
        body: ReadinessView = {"status": "ready", "checks": checks}
        return JSONResponse(body)

    @app.get("/v2/replicas", response_model=JSON_OBJECT)
    async def list_replicas(request: Request) -> dict[str, list[ReplicaView]]:
        principal(request, "read")
        checks = await readiness(state)
        return {"replicas": await state.replicas_view(this_replica(state, checks))}
