"""The baseline: a minimal Starlette + asyncpg app answering the benchmarked routes by hand.

It runs the same SQL as the service (the token lookup joined to user and organization, the
owned-app id probe, the keyset page queries with their joins and, on a cursor page, the
`previous` EXISTS column; the webhook page with its subscriptions and delivery stats aggregated
in the same statement; for writes the same locks, checks and INSERTs: the per-organization app cap
under an advisory lock, the app's secret encrypted, the install's lock, check and single
statement of data-modifying CTEs), reads the same columns and returns the same JSON bytes (the
harness compares the read bodies). No ORM, no validation framework, no middleware, no dependency
injection: what is left is the floor a Python service on this machine can reach. The SQL is in
`sql`, the bodies in `views`, the routes in `reads` and `writes`, secrets at rest in `crypto`.

    uvicorn bench.baseline:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.baseline.http import json_response
from bench.baseline.reads import installed_apps, log_entries, owned_app, owned_apps, public_apps, webhooks
from bench.baseline.writes import create_owned_app, install_app


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = os.environ["APPS_API_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")

    async def init(connection: asyncpg.Connection) -> None:
        await connection.set_type_codec(
            "jsonb", encoder=lambda v: v, decoder=orjson.loads, schema="pg_catalog"
        )

    pool = await asyncpg.create_pool(
        url, min_size=10, max_size=20, init=init, server_settings={"application_name": "bench-baseline"}
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/api/v5/public_apps", public_apps),
        Route("/api/v5/orgs/{organization_id}/owned_apps", owned_apps, methods=["GET"]),
        Route("/api/v5/orgs/{organization_id}/owned_apps", create_owned_app, methods=["POST"]),
        Route("/api/v5/orgs/{organization_id}/app_installations", install_app, methods=["POST"]),
        Route("/api/v5/orgs/{organization_id}/owned_apps/{app_id}", owned_app, methods=["GET"]),
        Route("/api/v5/orgs/{organization_id}/installed_apps", installed_apps, methods=["GET"]),
        Route("/api/v5/orgs/{organization_id}/owned_apps/{app_id}/webhooks", webhooks, methods=["GET"]),
        Route("/api/v5/orgs/{organization_id}/owned_apps/{app_id}/webhook_log_entries", log_entries),
    ],
    lifespan=lifespan,
)
