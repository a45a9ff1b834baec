"""The baseline: a minimal Starlette + asyncpg app answering the benchmarked routes by hand.

It runs the same SQL as the service (the token lookup joined to user and organization, the
owned-app id probe, the keyset page query with its joins and, on a cursor page, its `previous`
EXISTS column; for writes the same INSERTs and counter UPDATE), and returns the same JSON bytes (the harness
compares them). Reads the service does through the ORM (one owned app, installed apps, webhooks)
get what a hand-written version needs: one statement per query the ORM sends (for webhooks the
ownership probe reads the embedded app, and the page's subscriptions come in one statement). No ORM, no validation framework, no middleware, no dependency injection:
what is left is the floor a Python service on this machine can reach.

    uvicorn bench.baseline:app
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET_KEY = os.environ.get("APPS_API_SECRET_KEY", "")
BASE_URL = os.environ.get("APPS_API_PUBLIC_BASE_URL", "").rstrip("/")
PAGE_SIZE = 25

AUTH_SQL = """
SELECT users.id AS user_id, users.permissions, organizations.id AS org_id, organizations.name AS org_name,
       organizations.subscription_active, organizations.subscription_expires_at, organizations.features
FROM api_tokens JOIN users ON users.id = api_tokens.user_id
JOIN organizations ON organizations.id = users.organization_id
WHERE api_tokens.key_digest = $1 AND api_tokens.revoked_at IS NULL
  AND (api_tokens.expires_at IS NULL OR api_tokens.expires_at > $2) AND users.deleted_at IS NULL
"""

# Create builds its response from memory, so it needs the caller's embedded user too (the
# service's token lookup loads the whole user row anyway).
AUTH_WITH_USER_SQL = AUTH_SQL.replace(
    "SELECT users.id AS user_id,",
    "SELECT users.id AS user_id, users.first_name AS cu_first_name, users.last_name AS cu_last_name, "
    "users.alias AS cu_alias, users.organization_id AS cu_org, users.is_bot AS cu_is_bot, "
    "users.avatar_url AS cu_avatar,",
)

APP_COLUMNS = """
apps.id, apps.name, apps.description, apps.owned_by_organization_id, o.name AS owner_name,
apps.icon_asset_id, a.url AS icon_url, a.kind AS icon_kind, a.content_type AS icon_content_type,
a.size AS icon_size, a.width AS icon_width, a.height AS icon_height, apps.is_app_user_required,
apps.installation_count, apps.created_at, apps.updated_at, apps.required_scopes
"""
APP_JOINS = """
FROM apps JOIN organizations AS o ON o.id = apps.owned_by_organization_id
LEFT OUTER JOIN assets AS a ON a.id = apps.icon_asset_id
"""
OWNED_COLUMNS = (
    APP_COLUMNS
    + """,
apps.is_available_to_anyone, apps.is_available_to_partners, apps.app_user_default_first_name,
apps.app_user_default_last_name, apps.app_user_default_alias, apps.terms_of_service_url,
apps.privacy_policy_url, apps.trigger_url, apps.trigger_conditions, apps.allowed_redirect_uris,
apps.created_by_user_id, cu.first_name AS cu_first_name, cu.last_name AS cu_last_name, cu.alias AS cu_alias,
cu.organization_id AS cu_org, cu.is_bot AS cu_is_bot, cu.avatar_url AS cu_avatar,
apps.updated_by_user_id, uu.first_name AS uu_first_name, uu.last_name AS uu_last_name, uu.alias AS uu_alias,
uu.organization_id AS uu_org, uu.is_bot AS uu_is_bot, uu.avatar_url AS uu_avatar, apps.secret
"""
)
OWNED_JOINS = (
    APP_JOINS
    + """
LEFT OUTER JOIN users AS cu ON cu.id = apps.created_by_user_id
LEFT OUTER JOIN users AS uu ON uu.id = apps.updated_by_user_id
"""
)
OWNED_PAGE_SQL = f"""
SELECT {OWNED_COLUMNS} {OWNED_JOINS}
WHERE apps.owned_by_organization_id = $1 ORDER BY apps.created_at DESC, apps.id DESC LIMIT $2
"""
PUBLIC_PAGE_SQL = f"""
SELECT {APP_COLUMNS} {APP_JOINS}
WHERE apps.is_available_to_anyone AND apps.is_approved
ORDER BY apps.created_at DESC, apps.id DESC LIMIT $1
"""
OWNED_APP_SQL = (
    f"SELECT {OWNED_COLUMNS} {OWNED_JOINS} WHERE apps.owned_by_organization_id = $1 AND apps.id = $2"
)
LOG_COLUMNS = """
id, created_at, app_id, organization_id, webhook_id, endpoint_url, action, resource_id, channel, status,
retry_index, reason, response_status_code, response_body, response_headers, duration, completed_at
"""
LOG_PAGE_SQL = f"""
SELECT {LOG_COLUMNS} FROM webhook_log_entries WHERE app_id = $1
ORDER BY created_at DESC, id DESC LIMIT $2
"""
# A cursor page decides its `previous` link in the same statement (as the service does): an
# uncorrelated EXISTS over the rows on the cursor's side, evaluated once.
LOG_PAGE_AFTER_SQL = f"""
SELECT {LOG_COLUMNS},
       EXISTS (SELECT 1 FROM webhook_log_entries WHERE app_id = $1 AND (created_at, id) >= ($2, $3))
           AS _other_side
FROM webhook_log_entries WHERE app_id = $1 AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC LIMIT $4
"""
# The webhook log routes check ownership with one primary-key probe, like the service's OwnedAppIdDep.
OWNED_APP_ID_SQL = "SELECT apps.id FROM apps WHERE apps.owned_by_organization_id = $1 AND apps.id = $2"
# Installed apps: the apps the organization has an installation of (one per app), newest app first,
# keyed on the app's (created_at, id) as the service pages them.
INSTALLED_PAGE_SQL = f"""
SELECT {APP_COLUMNS}, apps.trigger_conditions {APP_JOINS}
JOIN app_installations AS i ON i.app_id = apps.id AND i.organization_id = $1
ORDER BY apps.created_at DESC, apps.id DESC LIMIT $2
"""
# Webhooks: the ownership check also reads the app's base view, which every webhook embeds.
OWNED_APP_BASE_SQL = (
    f"SELECT {APP_COLUMNS} {APP_JOINS} WHERE apps.owned_by_organization_id = $1 AND apps.id = $2"
)
USER_EMBED_COLUMNS = """
cu.first_name AS cu_first_name, cu.last_name AS cu_last_name, cu.alias AS cu_alias,
cu.organization_id AS cu_org, cu.is_bot AS cu_is_bot, cu.avatar_url AS cu_avatar,
uu.first_name AS uu_first_name, uu.last_name AS uu_last_name, uu.alias AS uu_alias,
uu.organization_id AS uu_org, uu.is_bot AS uu_is_bot, uu.avatar_url AS uu_avatar
"""
WEBHOOK_PAGE_SQL = f"""
SELECT w.id, w.organization_id, o.name AS org_name, w.endpoint_url, w.created_at, w.updated_at,
       w.created_by_user_id, w.updated_by_user_id, {USER_EMBED_COLUMNS}
FROM webhooks AS w JOIN organizations AS o ON o.id = w.organization_id
LEFT OUTER JOIN users AS cu ON cu.id = w.created_by_user_id
LEFT OUTER JOIN users AS uu ON uu.id = w.updated_by_user_id
WHERE w.app_id = $1 ORDER BY w.created_at DESC, w.id DESC LIMIT $2
"""
# The page's channel subscriptions in one statement (as the service's selectin load does).
SUBSCRIPTIONS_SQL = """
SELECT webhook_id, channel_pattern, is_additions_subscribed, is_changes_subscribed, is_removals_subscribed
FROM webhook_channel_subscriptions WHERE webhook_id = ANY($1::uuid[]) ORDER BY webhook_id, position
"""
INSERT_APP_SQL = """
INSERT INTO apps (id, owned_by_organization_id, name, description, icon_asset_id, is_available_to_anyone,
    is_approved, is_available_to_partners, is_app_user_required, app_user_default_first_name,
    app_user_default_last_name, app_user_default_alias, terms_of_service_url, privacy_policy_url, trigger_url,
    trigger_conditions, required_scopes, allowed_redirect_uris, installation_count, secret,
    created_by_user_id, updated_by_user_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, NULL, false, false, false, false, NULL, NULL, NULL, $5, $6, NULL, '{}', '{}', '{}', 0,
        $7, $8, $8, $9, $9)
"""
# Installs lock the app's row first, then check "may install" in a fresh statement (as the
# service does): one `SELECT ... FOR NO KEY UPDATE` with the check in its WHERE would judge the
# shares and partnerships by the snapshot taken before the lock wait, i.e. miss a concurrent unshare.
LOCK_APP_SQL = "SELECT apps.id FROM apps WHERE apps.id = $1 FOR NO KEY UPDATE"
INSTALLABLE_APP_SQL = f"""
SELECT {APP_COLUMNS}, apps.trigger_conditions {APP_JOINS}
WHERE apps.id = $1 AND (apps.owned_by_organization_id = $2
    OR (apps.is_available_to_anyone AND apps.is_approved)
    OR (apps.owned_by_organization_id <> $2
        AND EXISTS (SELECT 1 FROM partnerships
                    WHERE organization_a_id = least(apps.owned_by_organization_id, $2)
                      AND organization_b_id = greatest(apps.owned_by_organization_id, $2))
        AND (apps.is_available_to_partners IS true
             OR EXISTS (SELECT 1 FROM app_shares WHERE app_shares.app_id = apps.id
                        AND app_shares.organization_id = $2))))
"""
# As the service does: the installation, the app's counter and the install's three events in one
# statement of data-modifying CTEs (one round trip); the new count is the one read under the lock
# plus one (every counter change locks the row first).
INSTALL_SQL = """
WITH installation AS (
    INSERT INTO app_installations (id, app_id, organization_id, app_user_id, allowed_scopes, created_by_user_id,
                                   created_at, updated_at)
    VALUES ($19, $20, $21, NULL, $22, $23, $24, $24)
), counter AS (
    UPDATE apps SET installation_count = installation_count + 1, updated_at = updated_at WHERE id = $20
)
INSERT INTO events (organization_id, channel, action, resource_id, resource, required_scope, actor_user_id,
                    created_at)
VALUES ($1, $2, 'added', $3, $4, NULL, $5, $6), ($7, $8, 'added', $9, $10, NULL, $11, $12),
       ($13, $14, 'added', $15, $16, NULL, $17, $18)
"""


def _error(status: int, detail: str) -> Response:
    return Response(orjson.dumps({"detail": detail}), status, media_type="application/json")


def _sign(payload: bytes) -> bytes:
    return hmac.new(SECRET_KEY.encode(), b"cursor:" + payload, hashlib.sha256).digest()[:16]


def _cursor(created_at: datetime, row_id: uuid.UUID, backwards: bool) -> str:
    payload = json.dumps(
        [created_at.isoformat(), str(row_id), "p" if backwards else "n", "-created_at"], separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(_sign(payload) + payload).rstrip(b"=").decode()


def _decode_cursor(raw: str) -> tuple[datetime, uuid.UUID, bool] | None:
    blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    signature, payload = blob[:16], blob[16:]
    if not hmac.compare_digest(signature, _sign(payload)):
        return None
    created_at, row_id, direction, _ = json.loads(payload)
    return datetime.fromisoformat(created_at), uuid.UUID(row_id), direction == "p"


def _link(path: str, cursor: str) -> str:
    return f"{BASE_URL}{path}?cursor={cursor}"


async def _principal(
    request: Request, connection: asyncpg.Connection, query: str = AUTH_SQL
) -> asyncpg.Record | Response:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key:
        return _error(401, "Authentication credentials were not provided.")
    row = await connection.fetchrow(query, hashlib.sha256(key.encode()).digest(), datetime.now(UTC))
    if row is None:
        return _error(401, "Invalid, expired or revoked token.")
    expires = row["subscription_expires_at"]
    if not row["subscription_active"] or (expires is not None and expires <= datetime.now(UTC)):
        return _error(403, "Your organization does not have an active subscription.")
    if "settings" not in row["permissions"]:
        return _error(403, "You do not have the `settings` permission.")
    return row


async def _org_principal(
    request: Request, connection: asyncpg.Connection, query: str = AUTH_SQL
) -> asyncpg.Record | Response:
    principal = await _principal(request, connection, query)
    if isinstance(principal, Response):
        return principal
    if str(principal["org_id"]) != request.path_params["organization_id"]:
        return _error(403, "You do not have access to this organization.")
    return principal


def _user(row: asyncpg.Record, prefix: str, user_id: uuid.UUID | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    first, last = row[f"{prefix}_first_name"], row[f"{prefix}_last_name"]
    return {
        "id": user_id,
        "first_name": first,
        "last_name": last,
        "full_name": " ".join(part for part in (first, last) if part),
        "alias": row[f"{prefix}_alias"],
        "organization_id": row[f"{prefix}_org"],
        "is_bot": row[f"{prefix}_is_bot"],
        "avatar": row[f"{prefix}_avatar"],
    }


def _app_base(row: asyncpg.Record) -> dict[str, Any]:
    icon = None
    if row["icon_asset_id"] is not None:
        icon = {
            "id": row["icon_asset_id"],
            "url": row["icon_url"],
            "kind": row["icon_kind"],
            "content_type": row["icon_content_type"],
            "size": row["icon_size"],
            "width": row["icon_width"],
            "height": row["icon_height"],
        }
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "owned_by_organization_id": row["owned_by_organization_id"],
        "owned_by_organization": {"id": row["owned_by_organization_id"], "name": row["owner_name"]},
        "icon_asset_id": row["icon_asset_id"],
        "icon_asset": icon,
        "is_app_user_required": row["is_app_user_required"],
        "installation_count": row["installation_count"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _public_app(row: asyncpg.Record) -> dict[str, Any]:
    return {**_app_base(row), "required_scopes": row["required_scopes"]}


def _installed_app(row: asyncpg.Record) -> dict[str, Any]:
    return {**_app_base(row), "trigger_conditions": row["trigger_conditions"]}


def _owned_app(row: asyncpg.Record) -> dict[str, Any]:
    return {
        **_app_base(row),
        "is_available_to_anyone": row["is_available_to_anyone"],
        "is_available_to_partners": row["is_available_to_partners"],
        "app_user_default_first_name": row["app_user_default_first_name"],
        "app_user_default_last_name": row["app_user_default_last_name"],
        "app_user_default_alias": row["app_user_default_alias"],
        "terms_of_service_url": row["terms_of_service_url"],
        "privacy_policy_url": row["privacy_policy_url"],
        "trigger_url": row["trigger_url"],
        "trigger_conditions": row["trigger_conditions"],
        "required_scopes": row["required_scopes"],
        "allowed_redirect_uris": row["allowed_redirect_uris"],
        "created_by_user_id": row["created_by_user_id"],
        "created_by_user": _user(row, "cu", row["created_by_user_id"]),
        "updated_by_user_id": row["updated_by_user_id"],
        "updated_by_user": _user(row, "uu", row["updated_by_user_id"]),
        "secret": row["secret"],
    }


def _log_entry(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item.pop("_other_side", None)
    headers = item["response_headers"]
    item["response_headers"] = orjson.loads(headers) if isinstance(headers, str) else headers
    return item


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, default=str, option=orjson.OPT_UTC_Z), status, media_type="application/json"
    )


def _page(request: Request, rows: list[asyncpg.Record], view: Any, has_previous: bool = False) -> Response:
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    path = request.url.path
    next_url = _link(path, _cursor(rows[-1]["created_at"], rows[-1]["id"], False)) if more and rows else None
    previous_url = (
        _link(path, _cursor(rows[0]["created_at"], rows[0]["id"], True)) if has_previous and rows else None
    )
    return _json({"next": next_url, "previous": previous_url, "results": [view(row) for row in rows]})


async def owned_apps(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        rows = await connection.fetch(OWNED_PAGE_SQL, principal["org_id"], PAGE_SIZE + 1)
    return _page(request, rows, _owned_app)


async def public_apps(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        principal = await _principal(request, connection)
        if isinstance(principal, Response):
            return principal
        rows = await connection.fetch(PUBLIC_PAGE_SQL, PAGE_SIZE + 1)
    return _page(request, rows, _public_app)


async def owned_app(request: Request) -> Response:
    try:
        app_id = uuid.UUID(request.path_params["app_id"])
    except ValueError:
        return _error(404, "No owned app found with the given ID.")
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        row = await connection.fetchrow(OWNED_APP_SQL, principal["org_id"], app_id)
    if row is None:
        return _error(404, "No owned app found with the given ID.")
    return _json(_owned_app(row))


def _first_page_only(request: Request) -> Response | None:
    # Only page 1 of these lists is benchmarked: a cursor would silently be ignored otherwise.
    if "cursor" in request.query_params:
        return _error(400, "The baseline answers page 1 of this list only.")
    return None


async def installed_apps(request: Request) -> Response:
    if (refused := _first_page_only(request)) is not None:
        return refused
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        rows = await connection.fetch(INSTALLED_PAGE_SQL, principal["org_id"], PAGE_SIZE + 1)
    return _page(request, rows, _installed_app)


async def webhooks(request: Request) -> Response:
    if (refused := _first_page_only(request)) is not None:
        return refused
    try:
        app_id = uuid.UUID(request.path_params["app_id"])
    except ValueError:
        return _error(404, "No owned app found with the given ID.")
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        app = await connection.fetchrow(OWNED_APP_BASE_SQL, principal["org_id"], app_id)
        if app is None:
            return _error(404, "No owned app found with the given ID.")
        rows = await connection.fetch(WEBHOOK_PAGE_SQL, app_id, PAGE_SIZE + 1)
        subscriptions: dict[uuid.UUID, list[dict[str, Any]]] = {row["id"]: [] for row in rows[:PAGE_SIZE]}
        if subscriptions:
            for sub in await connection.fetch(SUBSCRIPTIONS_SQL, list(subscriptions)):
                subscriptions[sub["webhook_id"]].append(
                    {
                        "channel_pattern": sub["channel_pattern"],
                        "is_additions_subscribed": sub["is_additions_subscribed"],
                        "is_changes_subscribed": sub["is_changes_subscribed"],
                        "is_removals_subscribed": sub["is_removals_subscribed"],
                    }
                )
    embedded_app = _app_base(app)

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
            "created_by_user": _user(row, "cu", row["created_by_user_id"]),
            "updated_by_user_id": row["updated_by_user_id"],
            "updated_by_user": _user(row, "uu", row["updated_by_user_id"]),
        }

    return _page(request, rows, view)


async def log_entries(request: Request) -> Response:
    cursor = request.query_params.get("cursor")
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        app_id = await connection.fetchval(
            OWNED_APP_ID_SQL, principal["org_id"], uuid.UUID(request.path_params["app_id"])
        )
        if app_id is None:
            return _error(404, "No owned app found with the given ID.")
        if cursor is None:
            rows = await connection.fetch(LOG_PAGE_SQL, app_id, PAGE_SIZE + 1)
            return _page(request, rows, _log_entry)
        position = _decode_cursor(cursor)
        if position is None or position[2]:
            return _error(400, "Invalid cursor.")
        rows = await connection.fetch(LOG_PAGE_AFTER_SQL, app_id, position[0], position[1], PAGE_SIZE + 1)
    has_previous = bool(rows and rows[0]["_other_side"])
    return _page(request, rows, _log_entry, has_previous)


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
        return _json(
            {"detail": "Invalid request.", "errors": {f: ["This field is required."] for f in missing}}, 400
        )
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection, AUTH_WITH_USER_SQL)
        if isinstance(principal, Response):
            return principal
        app_id, org_id, user_id = uuid.uuid4(), principal["org_id"], principal["user_id"]
        name, secret, now = body["name"].strip(), base64.b64encode(os.urandom(32)).decode(), datetime.now(UTC)
        async with connection.transaction():
            await connection.execute(
                INSERT_APP_SQL,
                app_id,
                org_id,
                name,
                body["description"],
                body["terms_of_service_url"],
                body["privacy_policy_url"],
                secret,
                user_id,
                now,
            )
    # As the service does: the owned view from what was just written, no re-select.
    user = _user(principal, "cu", user_id)
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
    return _json(view, 201)


async def install_app(request: Request) -> Response:
    body = orjson.loads(await request.body())
    try:
        app_id = uuid.UUID(str(body.get("app_id")))
    except ValueError:
        return _json({"detail": "Invalid request.", "errors": {"app_id": ["Must be a valid UUID."]}}, 400)
    async with request.app.state.pool.acquire() as connection:
        principal = await _org_principal(request, connection)
        if isinstance(principal, Response):
            return principal
        if "apps" not in principal["features"]:
            return _error(403, "Your organization does not have the Apps feature.")
        org_id, user_id = principal["org_id"], principal["user_id"]
        now = datetime.now(UTC)
        installation_id = uuid.uuid4()
        try:
            async with connection.transaction():
                await connection.execute(LOCK_APP_SQL, app_id)
                app = await connection.fetchrow(INSTALLABLE_APP_SQL, app_id, org_id)
                if app is None:
                    return _error(404, "No installable app found with the given ID.")
                scopes = sorted(set(app["required_scopes"]))
                count = app["installation_count"] + 1
                installed_app = {**_app_base(app), "installation_count": count}
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
                await connection.execute(INSTALL_SQL, *arguments)
        except asyncpg.UniqueViolationError:
            return _error(409, "The app is already installed in this organization.")
    return _json(view, 201)


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


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
