"""The JWTs and the query of a trigger request (docs/design.md section 7).

- `data`: HS256, signed with the *app secret*, so the app can verify it came from us.
- access `token`: the acting user's short-lived access token (auth/access_tokens.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt

from apps_api.auth.access_tokens import ISSUER, encode_access_token
from apps_api.models.base import utcnow

DATA_TTL = timedelta(minutes=10)
# `sub` of every trigger when APPS_API_PUBLIC_BASE_URL is not set.
FALLBACK_HOST = "localhost"


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def service_host(base_url: str | None) -> str | None:
    """The host of a base URL (`https://service.example.com/` -> `service.example.com`)."""
    if not base_url:
        return None
    return urlsplit(base_url).hostname or None


def trigger_host(public_base_url: str | None) -> str:
    """`sub` of every trigger's `data`: the configured public host, never a request's Host header,
    so an app sees the same value whichever path (browser, worker, console) sent the trigger."""
    return service_host(public_base_url) or FALLBACK_HOST


def trigger_perms(user_permissions: Iterable[str], allowed_scopes: Iterable[str]) -> list[str]:
    """The acting principal's permissions: the user's, cut to the installation's scopes."""
    return sorted(set(user_permissions) & set(allowed_scopes))


def encode_trigger_data(
    *,
    app_secret: str,
    host: str,
    app_id: uuid.UUID,
    organization_id: uuid.UUID,
    installation_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    app_user_id: uuid.UUID | None,
    app_user_code: str | None,
    chat_id: str | None = None,
    visitor_id: str | None = None,
    room_id: str | None = None,
    domain_host: str | None = None,
    ttl: timedelta = DATA_TTL,
) -> str:
    """The `data` parameter: who did what, signed with the app secret.

    Every claim giosg's own integrations index is present, null where it does not apply
    (their parsers read `data["chat_id"]`, not `.get`); `sub` is this service's host, as giosg's
    `data` carries `sub: "service.giosg.com"`.
    """
    now = utcnow()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": host,
        "user_id": _id(user_id),
        "org_id": str(organization_id),
        "chat_id": chat_id,
        "visitor_id": visitor_id,
        "room_id": room_id,
        "domain_host": domain_host,
        "app_id": str(app_id),
        "inst_id": _id(installation_id),
        "app_user_id": _id(app_user_id),
        "app_user_code": app_user_code,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, app_secret, algorithm="HS256")


def decode_trigger_data(token: str, *, app_secret: str) -> dict[str, Any]:
    """Verify and decode a `data` JWT (what an app does with it; used by tests)."""
    claims: dict[str, Any] = jwt.decode(token, app_secret, algorithms=["HS256"], issuer=ISSUER)
    return claims


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added to its query (replacing same-named ones it already has)."""
    parts = urlsplit(url)
    query = [
        (key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in params
    ]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def trigger_request_url(
    *,
    trigger_url: str,
    type_: str,
    app_secret: str,
    secret_key: str,
    public_base_url: str | None,
    app_id: uuid.UUID,
    organization_id: uuid.UUID,
    installation_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    perms: Iterable[str],
    app_user_id: uuid.UUID | None,
    app_user_code: str | None,
    redirect_uri: str | None,
) -> str:
    """`trigger_url?type=…&data=<JWT>&token=<JWT>&redirect_uri=…`: the one builder of every trigger.

    The browser redirects (install flow, console) and the worker's GETs all come from here, so
    every path carries the same parameters (docs/install-flow.md).
    `token` acts as `user_id`, so there is none without a user; `uninstall` never has one (the
    installation is gone), nor a `redirect_uri`.
    """
    data = encode_trigger_data(
        app_secret=app_secret,
        host=trigger_host(public_base_url),
        app_id=app_id,
        organization_id=organization_id,
        installation_id=installation_id,
        user_id=user_id,
        app_user_id=app_user_id,
        app_user_code=app_user_code,
    )
    params = {"type": type_, "data": data}
    if user_id is not None and type_ != "uninstall":
        params["token"] = encode_access_token(
            secret_key=secret_key,
            user_id=user_id,
            organization_id=organization_id,
            app_id=app_id,
            installation_id=installation_id,
            perms=perms,
        )
    if redirect_uri is not None and type_ != "uninstall":
        params["redirect_uri"] = redirect_uri
    return with_query(trigger_url, params)
