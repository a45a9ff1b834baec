"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import ErrorResponse
from apps_api.kit.security import constant_time_equals
from apps_api.observability.delivery_metrics import refresh_queue_metrics
from apps_api.observability.metrics import REGISTRY
from apps_api.settings import Settings

logger = logging.getLogger(__name__)
router = APIRouter(tags=["Operations"])


class Health(BaseModel):
    """Only ok / unavailable: which dependency failed is logged, not shown to anyone who asks."""

    status: Literal["ok", "unavailable"] = Field(description="`ok`, or `unavailable` when a check failed.")


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers", name="get_liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: PostgreSQL and Redis are reachable",
    name="get_readiness",
    responses={503: {"model": Health, "description": "A dependency is unreachable."}},
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        logger.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
    arq = request.app.state.arq
    if arq is None:
        checks["redis"] = "not configured"
    else:
        try:
            async with asyncio.timeout(3):
                await arq.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            logger.warning("readiness: redis unreachable: %s", type(exc).__name__)
            checks["redis"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ready else "unavailable")
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _metrics_allowed(request: Request, settings: Settings) -> bool:
    """`Authorization: Bearer <APPS_API_METRICS_TOKEN>`; without a configured token, nobody."""
    token = settings.metrics_token
    if not token:
        return False
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and constant_time_equals(presented.strip(), token)


@router.get(
    "/metrics",
    summary="Prometheus metrics (with `Authorization: Bearer <APPS_API_METRICS_TOKEN>`)",
    response_class=Response,
    name="get_metrics",
    responses={
        404: {"model": ErrorResponse, "description": "No or another metrics token (or none configured)."}
    },
)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """HTTP metrics of this process, plus the delivery queue's state read from PostgreSQL.

    Not public: status counts per route (failed logins among them) are for the operator. Without
    the token the answer is the 404 of a path that does not exist.
    """
    if not _metrics_allowed(request, settings):
        raise StarletteHTTPException(status_code=404)
    engine = getattr(request.app.state, "engine", None)  # set by the lifespan
    if engine is not None:
        await refresh_queue_metrics(engine)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
