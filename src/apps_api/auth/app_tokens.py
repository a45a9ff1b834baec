"""`Authorization: GIOSGAPP <token> <app_secret>`: an app acting as the user of a trigger.

The token is a short-lived access token from a trigger (`apps_api.triggers.tokens`), signed with
our secret key and bound to one app; it is accepted only together with that app's secret, while
its user is live and (when the token names one) the installation still exists.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.apps.secrets import app_secret_matches
from apps_api.auth.service import Principal
from apps_api.models import App, AppInstallation, Organization, User
from apps_api.settings import Settings
from apps_api.triggers.tokens import decode_access_token


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def authenticate_app_token(
    *, session: AsyncSession, credentials: str, settings: Settings
) -> Principal | None:
    """The principal of `<token> <app_secret>`, or None (a 401)."""
    parts = credentials.split()
    if len(parts) != 2:
        return None
    token, app_secret = parts
    claims = decode_access_token(token, secret_key=settings.secret_key)
    if claims is None:
        return None
    app_id, user_id, organization_id = (_uuid(claims.get(key)) for key in ("app_id", "sub", "org_id"))
    installation_id = _uuid(claims.get("inst_id"))
    if app_id is None or user_id is None or organization_id is None:
        return None
    if claims.get("inst_id") is not None and installation_id is None:
        return None
    app = await session.get(App, app_id)
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
    if installation_id is not None:
        installed = await session.scalar(
            select(AppInstallation.id).where(
                AppInstallation.id == installation_id,
                AppInstallation.app_id == app.id,
                AppInstallation.organization_id == organization.id,
            )
        )
        if installed is None:
            return None
    return Principal(user=user, organization=organization, app_id=app.id)


class AppTokenAuthenticator(Protocol):
    async def __call__(self, *, session: AsyncSession, credentials: str) -> Principal | None: ...


def app_token_authenticator(settings: Settings) -> AppTokenAuthenticator:
    """The hook `create_app()` stores as `app.state.authenticate_app_token`."""

    async def authenticate(*, session: AsyncSession, credentials: str) -> Principal | None:
        return await authenticate_app_token(session=session, credentials=credentials, settings=settings)

    return authenticate
