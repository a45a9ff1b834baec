"""The baseline's HTTP plumbing: the caller's token, JSON answers, pages and their signed cursors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response

from bench.baseline.sql import AUTH_SQL

SECRET_KEY = os.environ.get("APPS_API_SECRET_KEY", "")
BASE_URL = os.environ.get("APPS_API_PUBLIC_BASE_URL", "").rstrip("/")
PAGE_SIZE = 25


def error(status: int, detail: str) -> Response:
    return Response(orjson.dumps({"detail": detail}), status, media_type="application/json")


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, default=str, option=orjson.OPT_UTC_Z), status, media_type="application/json"
    )


def _sign(payload: bytes) -> bytes:
    return hmac.new(SECRET_KEY.encode(), b"cursor:" + payload, hashlib.sha256).digest()[:16]


def _cursor(created_at: datetime, row_id: uuid.UUID, backwards: bool) -> str:
    payload = json.dumps(
        [created_at.isoformat(), str(row_id), "p" if backwards else "n", "-created_at"], separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(_sign(payload) + payload).rstrip(b"=").decode()


def decode_cursor(raw: str) -> tuple[datetime, uuid.UUID, bool] | None:
    blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    signature, payload = blob[:16], blob[16:]
    if not hmac.compare_digest(signature, _sign(payload)):
        return None
    created_at, row_id, direction, _ = json.loads(payload)
    return datetime.fromisoformat(created_at), uuid.UUID(row_id), direction == "p"


def _link(path: str, cursor: str) -> str:
    return f"{BASE_URL}{path}?cursor={cursor}"


def page(
    request: Request,
    rows: list[asyncpg.Record],
    view: Callable[[asyncpg.Record], dict[str, Any]],
    has_previous: bool = False,
) -> Response:
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    path = request.url.path
    next_url = _link(path, _cursor(rows[-1]["created_at"], rows[-1]["id"], False)) if more and rows else None
    previous_url = (
        _link(path, _cursor(rows[0]["created_at"], rows[0]["id"], True)) if has_previous and rows else None
    )
    return json_response({"next": next_url, "previous": previous_url, "results": [view(row) for row in rows]})


def first_page_only(request: Request) -> Response | None:
    # Only page 1 of these lists is benchmarked: a cursor would silently be ignored otherwise.
    if "cursor" in request.query_params:
        return error(400, "The baseline answers page 1 of this list only.")
    return None


async def principal(
    request: Request, connection: asyncpg.Connection, query: str = AUTH_SQL
) -> asyncpg.Record | Response:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key:
        return error(401, "Authentication credentials were not provided.")
    row = await connection.fetchrow(query, hashlib.sha256(key.encode()).digest(), datetime.now(UTC))
    if row is None:
        return error(401, "Invalid, expired or revoked token.")
    expires = row["subscription_expires_at"]
    if not row["subscription_active"] or (expires is not None and expires <= datetime.now(UTC)):
        return error(403, "Your organization does not have an active subscription.")
    if "settings" not in row["permissions"]:
        return error(403, "You do not have the `settings` permission.")
    return row


async def org_principal(
    request: Request, connection: asyncpg.Connection, query: str = AUTH_SQL
) -> asyncpg.Record | Response:
    found = await principal(request, connection, query)
    if isinstance(found, Response):
        return found
    if str(found["org_id"]) != request.path_params["organization_id"]:
        return error(403, "You do not have access to this organization.")
    return found
