"""App credentials -> an app principal (docs/permissions.md).

- `GIOSGAPP <token> <app_secret>`: `token` is a short-lived access token (`auth/access_tokens.py`),
  signed with our secret key and bound to one app and installation: a trigger's `token` (the app
  acting as the user who triggered it) or a webhook's `app_user_auth.access_token` (the app acting
  as its installation's app user). It counts only together with that app's secret.
- `Bearer <access_token>` of an `app_user_auth`: the app user, without the secret, as giosg's
  integrations use it (`<token_type> <access_token>`). A trigger's token never works this way:
  it travels in a URL, so it needs the secret.

Either is accepted while the user is live and the installation exists, and never reaches beyond
the installation's `allowed_scopes`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select

from apps_api.auth.access_tokens import APP_USER_ACTOR, decode_access_token
from apps_api.auth.secrets import app_secret_matches
from apps_api.auth.service import APP_AS_USER, APP_USER, Principal, principal_columns
from apps_api.kit.crypto import decrypt, decrypt_optional
from apps_api.kit.driver import CompiledStatement, Database
from apps_api.models import App, AppInstallation, Organization, User
from apps_api.settings import Settings


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def authenticate_app_token(
    *, session: Database, token: str, app_secret: str | None, settings: Settings
) -> Principal | None:
    """The app principal of an access token (with the app's secret, or alone for an app user's
    `app_user_auth`), or None (a 401)."""
    claims = decode_access_token(token, secret_key=settings.secret_key)
    if claims is None:
        return None
    ids = _claimed_ids(claims)
    if ids is None:
        return None
    app_id, user_id, organization_id, installation_id = ids
    as_app_user = claims.get("act") == APP_USER_ACTOR
    if not await _credentials_suffice(
        session=session, app_id=app_id, app_secret=app_secret, as_app_user=as_app_user
    ):
        return None
    row = await _live_installation_user(
        session=session,
        app_id=app_id,
        user_id=user_id,
        organization_id=organization_id,
        installation_id=installation_id,
    )
    # The installation gives the app principal its scopes: no installation, no principal.
    if row is None or row["installation_id"] is None:
        return None
    is_app_user = row["installation_app_user_id"] == user_id
    if as_app_user and not is_app_user:
        return None
    return Principal.of_row(
        session=session,
        row=row,
        kind=APP_USER if is_app_user else APP_AS_USER,
        app_id=app_id,
        installation_id=row["installation_id"],
        allowed_scopes=row["installation_allowed_scopes"] or (),
    )


def _claimed_ids(claims: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID | None] | None:
    """The app, user, organization and (optional) installation ids of the claims; None when a
    required one is missing or any is not a UUID."""
    app_id, user_id, organization_id = (_uuid(claims.get(key)) for key in ("app_id", "sub", "org_id"))
    installation_id = _uuid(claims.get("inst_id"))
    if app_id is None or user_id is None or organization_id is None:
        return None
    if claims.get("inst_id") is not None and installation_id is None:
        return None
    return app_id, user_id, organization_id, installation_id


async def _credentials_suffice(
    *, session: Database, app_id: uuid.UUID, app_secret: str | None, as_app_user: bool
) -> bool:
    """A token counts with its app's secret, or without one as an app user's `app_user_auth`."""
    if app_secret is None:
        return as_app_user
    return await _secret_matches(session=session, app_id=app_id, app_secret=app_secret)


@dataclass(slots=True)
class _Secrets:
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


_apps, _users, _organizations = App.__table__, User.__table__, Organization.__table__
_installations = AppInstallation.__table__
_APP_SECRETS = CompiledStatement(
    select(_apps.c.secret, _apps.c.previous_secret, _apps.c.previous_secret_expires_at).where(
        _apps.c.id == bindparam("app_id")
    )
)


async def _secret_matches(*, session: Database, app_id: uuid.UUID, app_secret: str) -> bool:
    """Whether the app exists and this is its secret (current, or the previous one in its grace)."""
    rows = await _APP_SECRETS.fetch(session, app_id=app_id)
    app = (
        _Secrets(
            decrypt(rows[0]["secret"]),
            decrypt_optional(rows[0]["previous_secret"]),
            rows[0]["previous_secret_expires_at"],
        )
        if rows
        else None
    )
    # Compared even without an app, so a missing app takes as long as a wrong secret.
    return app_secret_matches(app, app_secret) and app is not None


def _installation_user(*, named_installation: bool) -> CompiledStatement:
    """The token's user, live, in the token's organization, with that organization and the app's
    installation there (the token's own, when it names one; NULL columns when there is none)."""
    installation = (_installations.c.app_id == bindparam("app_id")) & (
        _installations.c.organization_id == _users.c.organization_id
    )
    if named_installation:
        installation = installation & (_installations.c.id == bindparam("installation_id"))
    return CompiledStatement(
        select(
            *principal_columns(),
            _installations.c.id.label("installation_id"),
            _installations.c.app_user_id.label("installation_app_user_id"),
            _installations.c.allowed_scopes.label("installation_allowed_scopes"),
        )
        .select_from(
            _users.join(_organizations, _organizations.c.id == _users.c.organization_id).outerjoin(
                _installations, installation
            )
        )
        .where(
            _users.c.id == bindparam("user_id"),
            _users.c.organization_id == bindparam("organization_id"),
            _users.c.deleted_at.is_(None),
        )
    )


_INSTALLATION_USER = {named: _installation_user(named_installation=named) for named in (False, True)}


async def _live_installation_user(
    *,
    session: Database,
    app_id: uuid.UUID,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    installation_id: uuid.UUID | None,
) -> Any:
    """The row of `_installation_user`, or None when the user is not live in the organization."""
    values: dict[str, Any] = {"app_id": app_id, "user_id": user_id, "organization_id": organization_id}
    if installation_id is not None:
        values["installation_id"] = installation_id
    rows = await _INSTALLATION_USER[installation_id is not None].fetch(session, **values)
    return rows[0] if rows else None


class AppTokenAuthenticator(Protocol):
    async def __call__(
        self, *, session: Database, token: str, app_secret: str | None
    ) -> Principal | None: ...


def app_token_authenticator(settings: Settings) -> AppTokenAuthenticator:
    """The hook `create_app()` stores as `app.state.authenticate_app_token`."""

    async def authenticate(*, session: Database, token: str, app_secret: str | None) -> Principal | None:
        return await authenticate_app_token(
            session=session, token=token, app_secret=app_secret, settings=settings
        )

    return authenticate
