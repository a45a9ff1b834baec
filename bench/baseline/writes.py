"""The baseline's writes: create an owned app, install an app (the service's statements and checks)."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response

from bench.baseline import crypto, sql, views
from bench.baseline.http import error, json_response, org_principal


async def create_owned_app(request: Request) -> Response:
    body = orjson.loads(await request.body())
    missing = [
        field
        for field in (
            "name",
            "description",
            "is_app_user_required",
            "terms_of_service_url",
            "privacy_policy_url",
        )
        if field not in body
    ]
    if missing:
        return json_response(
            {"detail": "Invalid request.", "errors": {f: ["This field is required."] for f in missing}}, 400
        )
    async with request.app.state.pool.acquire() as connection:
        principal = await org_principal(request, connection, sql.AUTH_WITH_USER_SQL)
        if isinstance(principal, Response):
            return principal
        app_id, org_id, user_id = uuid.uuid4(), principal["org_id"], principal["user_id"]
        name, secret, now = body["name"].strip(), secrets.token_hex(32), datetime.now(UTC)
        async with connection.transaction():
            await connection.execute(sql.LOCK_OWNER_APPS_SQL, f"owned_apps:{org_id}")
            if await connection.fetchval(sql.OWNED_APPS_COUNT_SQL, org_id) >= sql.MAX_APPS_PER_ORGANIZATION:
                return error(409, f"An organization may own at most {sql.MAX_APPS_PER_ORGANIZATION} apps.")
            await connection.execute(
                sql.INSERT_APP_SQL,
                app_id,
                org_id,
                name,
                body["description"],
                body["terms_of_service_url"],
                body["privacy_policy_url"],
                crypto.encrypt(secret),  # as the service stores it
                user_id,
                now,
            )
    # As the service does: the owned view from what was just written, no re-select.
    user = views.user(principal, "cu", user_id)
    view = {
        "id": app_id,
        "name": name,
        "description": body["description"],
        "owned_by_organization_id": org_id,
        "owned_by_organization": {"id": org_id, "name": principal["org_name"]},
        "icon_asset_id": None,
        "icon_asset": None,
        "is_app_user_required": False,
        "installation_count": 0,
        "created_at": now,
        "updated_at": now,
        "is_available_to_anyone": False,
        "is_available_to_partners": False,
        "app_user_default_first_name": None,
        "app_user_default_last_name": None,
        "app_user_default_alias": None,
        "terms_of_service_url": body["terms_of_service_url"],
        "privacy_policy_url": body["privacy_policy_url"],
        "trigger_url": None,
        "trigger_conditions": [],
        "required_scopes": [],
        "allowed_redirect_uris": [],
        "created_by_user_id": user_id,
        "created_by_user": user,
        "updated_by_user_id": user_id,
        "updated_by_user": user,
        "secret": secret,
    }
    return json_response(view, 201)


async def install_app(request: Request) -> Response:
    body = orjson.loads(await request.body())
    try:
        app_id = uuid.UUID(str(body.get("app_id")))
    except ValueError:
        return json_response(
            {"detail": "Invalid request.", "errors": {"app_id": ["Must be a valid UUID."]}}, 400
        )
    async with request.app.state.pool.acquire() as connection:
        principal = await org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        if "apps" not in principal["features"]:
            return error(403, "Your organization does not have the Apps feature.")
        org_id, user_id = principal["org_id"], principal["user_id"]
        now = datetime.now(UTC)
        installation_id = uuid.uuid4()
        try:
            async with connection.transaction():
                await connection.execute(sql.LOCK_APP_SQL, app_id)
                app = await connection.fetchrow(sql.INSTALLABLE_APP_SQL, app_id, org_id)
                if app is None:
                    return error(404, "No installable app found with the given ID.")
                scopes = sorted(set(app["required_scopes"]))
                count = app["installation_count"] + 1
                installed_app = {**views.app_base(app), "installation_count": count}
                installed_app["trigger_conditions"] = app["trigger_conditions"]
                view = {
                    "id": installation_id,
                    "organization_id": org_id,
                    "organization": {"id": org_id, "name": principal["org_name"]},
                    "app_id": app_id,
                    "app": installed_app,
                    "app_user_id": None,
                    "app_user": None,
                    "allowed_scopes": scopes,
                    "created_at": now,
                    "updated_at": now,
                }
                resource = orjson.dumps(view, default=str, option=orjson.OPT_UTC_Z).decode()
                owner = app["owned_by_organization_id"]
                arguments: list[Any] = []
                for organization, channel, resource_id, payload in (
                    (org_id, f"/api/v5/orgs/{org_id}/app_installations", installation_id, resource),
                    (
                        org_id,
                        f"/api/v5/orgs/{org_id}/installed_apps",
                        app_id,
                        orjson.dumps(installed_app, default=str, option=orjson.OPT_UTC_Z).decode(),
                    ),
                    (
                        owner,
                        f"/api/v5/orgs/{owner}/owned_apps/{app_id}/installations",
                        installation_id,
                        resource,
                    ),
                ):
                    arguments += [organization, channel, str(resource_id), payload, user_id, now]
                arguments += [installation_id, app_id, org_id, scopes, user_id, now]
                # The events trigger (migration 0003) NOTIFYs the workers on commit, as for the service.
                await connection.execute(sql.INSTALL_SQL, *arguments)
        except asyncpg.UniqueViolationError:
            return error(409, "The app is already installed in this organization.")
    return json_response(view, 201)
