"""JWTs of the giosg trigger protocol (DESIGN.md section 7).

- `data`: HS256, signed with the *app secret*, so the app can verify it came from us.
- access `token`: HS256, signed with *our* secret key; short-lived, for the acting user,
  usable as `Authorization: GIOSGAPP <token> <app_secret>` (only together with the secret).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt

from apps_api.models.base import utcnow

DATA_TTL = timedelta(minutes=10)
# `sub` of a server-sent trigger when neither APPS_API_PUBLIC_BASE_URL nor a request names the host.
FALLBACK_HOST = "localhost"
ACCESS_TOKEN_TTL = timedelta(minutes=15)
ACCESS_TOKEN_AUDIENCE = "giosgapp"  # noqa: S105 - a JWT audience, not a secret
ISSUER = "apps-api"
# The `act` claim of an access token for an installation's app user (a webhook's
# `app_user_auth`): such a token also works alone, as `Bearer <token>`.
APP_USER_ACTOR = "app_user"


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def service_host(base_url: str | None) -> str | None:
    """The host of a base URL (`https://service.example.com/` -> `service.example.com`)."""
    if not base_url:
        return None
    return urlsplit(base_url).hostname or None


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


def encode_access_token(
    *,
    secret_key: str,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    app_id: uuid.UUID,
    installation_id: uuid.UUID | None,
    ttl: timedelta = ACCESS_TOKEN_TTL,
    as_app_user: bool = False,
) -> str:
    """A short-lived access token acting as `user_id`, bound to `app_id` (`as_app_user`: the
    installation's app user, usable without the app secret)."""
    now = utcnow()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": ACCESS_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "org_id": str(organization_id),
        "app_id": str(app_id),
        "inst_id": _id(installation_id),
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if as_app_user:
        claims["act"] = APP_USER_ACTOR
    return jwt.encode(claims, secret_key, algorithm="HS256")


def decode_access_token(token: str, *, secret_key: str) -> dict[str, Any] | None:
    """Claims of a valid, unexpired access token, or None."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret_key, algorithms=["HS256"], audience=ACCESS_TOKEN_AUDIENCE, issuer=ISSUER
        )
    except jwt.PyJWTError:
        return None
    return claims
