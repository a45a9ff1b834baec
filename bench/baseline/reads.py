"""The baseline's reads: the hot lists, one owned app, the installed apps, an app's webhooks."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
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


async def _subscriptions(
    connection: asyncpg.Connection, rows: list[asyncpg.Record]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The channel subscriptions of the page's webhooks, in one statement."""
    subscriptions: dict[uuid.UUID, list[dict[str, Any]]] = {row["id"]: [] for row in rows[:PAGE_SIZE]}
    if subscriptions:
        for sub in await connection.fetch(sql.SUBSCRIPTIONS_SQL, list(subscriptions)):
            subscriptions[sub["webhook_id"]].append(
                {
                    "channel_pattern": sub["channel_pattern"],
                    "is_additions_subscribed": sub["is_additions_subscribed"],
                    "is_changes_subscribed": sub["is_changes_subscribed"],
                    "is_removals_subscribed": sub["is_removals_subscribed"],
                }
            )
    return subscriptions


async def webhooks(request: Request) -> Response:
    if (refused := first_page_only(request)) is not None:
        return refused
    if (app_id := _app_id(request)) is None:
        return error(404, "No owned app found with the given ID.")
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        app = await connection.fetchrow(sql.OWNED_APP_BASE_SQL, caller["org_id"], app_id)
        if app is None:
            return error(404, "No owned app found with the given ID.")
        rows = await connection.fetch(sql.WEBHOOK_PAGE_SQL, app_id, PAGE_SIZE + 1)
        subscriptions = await _subscriptions(connection, rows)
    embedded_app = views.app_base(app)

    def view(row: asyncpg.Record) -> dict[str, Any]:
        return {
            "id": row["id"],
            "organization_id": row["organization_id"],
            "organization": {"id": row["organization_id"], "name": row["org_name"]},
            "app_id": app_id,
            "app": embedded_app,
            "endpoint_url": row["endpoint_url"],
            "channel_subscriptions": subscriptions[row["id"]],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "created_by_user_id": row["created_by_user_id"],
            "created_by_user": views.user(row, "cu", row["created_by_user_id"]),
            "updated_by_user_id": row["updated_by_user_id"],
            "updated_by_user": views.user(row, "uu", row["updated_by_user_id"]),
        }

    return page(request, rows, view)


async def log_entries(request: Request) -> Response:
    cursor = request.query_params.get("cursor")
    async with request.app.state.pool.acquire() as connection:
        caller = await org_principal(request, connection)
        if isinstance(caller, Response):
            return caller
        app_id = await connection.fetchval(
            sql.OWNED_APP_ID_SQL, caller["org_id"], uuid.UUID(request.path_params["app_id"])
        )
        if app_id is None:
            return error(404, "No owned app found with the given ID.")
        if cursor is None:
            rows = await connection.fetch(sql.LOG_PAGE_SQL, app_id, PAGE_SIZE + 1)
            return page(request, rows, views.log_entry)
        position = decode_cursor(cursor)
        if position is None or position[2]:
            return error(400, "Invalid cursor.")
        rows = await connection.fetch(sql.LOG_PAGE_AFTER_SQL, app_id, position[0], position[1], PAGE_SIZE + 1)
    has_previous = bool(rows and rows[0]["_other_side"])
    return page(request, rows, views.log_entry, has_previous)
