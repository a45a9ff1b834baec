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
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import APP_USER_ACTOR, decode_access_token
from apps_api.auth.secrets import app_secret_matches
from apps_api.auth.service import APP_AS_USER, APP_USER, Principal
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
    *, session: AsyncSession, token: str, app_secret: str | None, settings: Settings
) -> Principal | None:
    """The app principal of an access token (with the app's secret, or alone for an app user's
    `app_user_auth`), or None (a 401)."""
    claims = decode_access_token(token, secret_key=settings.secret_key)
    if claims is None:
        return None
    app_id, user_id, organization_id = (_uuid(claims.get(key)) for key in ("app_id", "sub", "org_id"))
    installation_id = _uuid(claims.get("inst_id"))
    if app_id is None or user_id is None or organization_id is None:
        return None
    if claims.get("inst_id") is not None and installation_id is None:
        return None
    as_app_user = claims.get("act") == APP_USER_ACTOR
    if app_secret is None and not as_app_user:
        return None
    if app_secret is not None:
        app = await session.get(App, app_id)
        # Compared even without an app, so a missing app takes as long as a wrong secret.
        if not app_secret_matches(app, app_secret) or app is None:
            return None
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.id == user_id, User.organization_id == organization_id, User.deleted_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    user, organization = row
    # The installation gives the app principal its scopes: no installation, no principal.
    statement = select(AppInstallation).where(
        AppInstallation.app_id == app_id, AppInstallation.organization_id == organization.id
    )
    if installation_id is not None:
        statement = statement.where(AppInstallation.id == installation_id)
    installation = await session.scalar(statement)
    if installation is None:
        return None
    is_app_user = installation.app_user_id == user.id
    if as_app_user and not is_app_user:
        return None
    return Principal(
        user=user,
        organization=organization,
        kind=APP_USER if is_app_user else APP_AS_USER,
        app_id=app_id,
        installation_id=installation.id,
        allowed_scopes=installation.allowed_scopes,
    )


class AppTokenAuthenticator(Protocol):
    async def __call__(
        self, *, session: AsyncSession, token: str, app_secret: str | None
    ) -> Principal | None: ...


def app_token_authenticator(settings: Settings) -> AppTokenAuthenticator:
    """The hook `create_app()` stores as `app.state.authenticate_app_token`."""

    async def authenticate(*, session: AsyncSession, token: str, app_secret: str | None) -> Principal | None:
        return await authenticate_app_token(
            session=session, token=token, app_secret=app_secret, settings=settings
        )

    return authenticate
