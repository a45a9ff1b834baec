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

from apps_api.observability.delivery_metrics import refresh_queue_metrics
from apps_api.observability.metrics import REGISTRY

logger = logging.getLogger(__name__)
router = APIRouter(tags=["Operations"])


class Health(BaseModel):
    """Whether the process (and, for readiness, each dependency) is usable."""

    status: Literal["ok", "unavailable"] = Field(description="`ok`, or `unavailable` when a check failed.")
    checks: dict[str, str] = Field(
        {}, description="Each dependency (`database`, `redis`) with `ok`, `unreachable` or `not configured`."
    )


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
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, name="get_metrics")
async def metrics(request: Request) -> Response:
    """HTTP metrics of this process, plus the delivery queue's state read from PostgreSQL."""
    engine = getattr(request.app.state, "engine", None)  # set by the lifespan
    if engine is not None:
        await refresh_queue_metrics(engine)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
