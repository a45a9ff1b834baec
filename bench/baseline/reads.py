"""The baseline's reads: the hot lists, one owned app, the installed apps, an app's webhooks."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from bench.baseline import sql, views
from bench.baseline.http import (
    PAGE_SIZE,
    decode_cursor,
    error,
    first_page_only,
    json_response,
    org_principal,
    page,
    principal,
)

# The service's APPS_API_WEBHOOK_LOG_RETENTION_DAYS (the bench sets it: the seeded log is days old).
LOG_RETENTION_DAYS = int(os.environ.get("APPS_API_WEBHOOK_LOG_RETENTION_DAYS", "7"))


def kept_since() -> datetime:
    """The oldest entry a read of the log returns, as the service's `kept_since`."""
    return datetime.now(UTC) - timedelta(days=LOG_RETENTION_DAYS)


def _app_id(request: Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.path_params["app_id"])
    except ValueError:
        return None


async def owned_apps(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        rows = await connection.fetch(sql.OWNED_PAGE_SQL, caller["org_id"], PAGE_SIZE + 1)
    return page(request, rows, views.owned_app)


async def public_apps(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        caller = await principal(request, connection)
        if isinstance(caller, Response):
            return caller
        rows = await connection.fetch(sql.PUBLIC_PAGE_SQL, PAGE_SIZE + 1)
    return page(request, rows, views.public_app)


async def owned_app(request: Request) -> Response:
    if (app_id := _app_id(request)) is None:
        return error(404, "No owned app found with the given ID.")
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        row = await connection.fetchrow(sql.OWNED_APP_SQL, caller["org_id"], app_id)
    if row is None:
        return error(404, "No owned app found with the given ID.")
    return json_response(views.owned_app(row))


async def installed_apps(request: Request) -> Response:
    if (refused := first_page_only(request)) is not None:
        return refused
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        rows = await connection.fetch(sql.INSTALLED_PAGE_SQL, caller["org_id"], PAGE_SIZE + 1)
    return page(request, rows, views.installed_app)


async def webhooks(request: Request) -> Response:
    if (refused := first_page_only(request)) is not None:
        return refused
    if (app_id := _app_id(request)) is None:
        return error(404, "No owned app found with the given ID.")
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        if await connection.fetchval(sql.OWNED_APP_ID_SQL, caller["org_id"], app_id) is None:
            return error(404, "No owned app found with the given ID.")
        rows = await connection.fetch(sql.WEBHOOK_PAGE_SQL, app_id, PAGE_SIZE + 1)
    return page(request, rows, views.webhook)


async def log_entries(request: Request) -> Response:
    cursor = request.query_params.get("cursor")
    if (app_id := _app_id(request)) is None:
        return error(404, "No owned app found with the given ID.")
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        if await connection.fetchval(sql.OWNED_APP_ID_SQL, caller["org_id"], app_id) is None:
            return error(404, "No owned app found with the given ID.")
        since = kept_since()
        if cursor is None:
            rows = await connection.fetch(sql.LOG_PAGE_SQL, app_id, since, PAGE_SIZE + 1)
            return page(request, rows, views.log_entry)
        position = decode_cursor(cursor)
        if position is None or position[2]:
            return error(400, "Invalid cursor.")
        rows = await connection.fetch(
            sql.LOG_PAGE_AFTER_SQL, app_id, since, position[0], position[1], PAGE_SIZE + 1
        )
    has_previous = bool(rows and rows[0]["_other_side"])
    return page(request, rows, views.log_entry, has_previous)
