"""The short-lived access token: our JWT acting as a user for one app (docs/design.md section 7).

HS256, signed with *our* secret key. A trigger carries one for the acting user (its `token`,
usable as `Authorization: GIOSGAPP <token> <app_secret>`, only together with the secret); a
webhook's `app_user_auth` carries one for the installation's app user (also usable alone, as
`Bearer <token>`). auth/app_tokens.py turns either back into a principal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import jwt

from apps_api.models.base import utcnow

ACCESS_TOKEN_TTL = timedelta(minutes=15)
ACCESS_TOKEN_AUDIENCE = "giosgapp"  # noqa: S105 - a JWT audience, not a secret
# `iss` of every JWT this service signs (the access token and a trigger's `data`).
ISSUER = "apps-api"
# The `act` claim of an access token for an installation's app user (a webhook's
# `app_user_auth`): such a token also works alone, as `Bearer <token>`.
APP_USER_ACTOR = "app_user"


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def encode_access_token(
    *,
    secret_key: str,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    app_id: uuid.UUID,
    installation_id: uuid.UUID | None,
    ttl: timedelta = ACCESS_TOKEN_TTL,
    as_app_user: bool = False,
    perms: Iterable[str] | None = None,
) -> str:
    """A short-lived access token acting as `user_id`, bound to `app_id` (`as_app_user`: the
    installation's app user, usable without the app secret).

    Like giosg's, it names the user (`user_id`, besides `sub`) and, on a trigger's token, what
    they may do (`perms`). These claims inform the app; the API decides from the database.
    """
    now = utcnow()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": ACCESS_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "user_id": str(user_id),
        "org_id": str(organization_id),
        "app_id": str(app_id),
        "inst_id": _id(installation_id),
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if as_app_user:
        claims["act"] = APP_USER_ACTOR
    if perms is not None:
        claims["perms"] = sorted(perms)
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
