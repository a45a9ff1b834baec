"""App user codes and their exchange for a persistent API token of the app user (docs/design.md section 7)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.secrets import app_secret_matches
from apps_api.kit.security import digest
from apps_api.models import App, AppInstallation, AppUserCode, User
from apps_api.models.base import utcnow
from apps_api.platform.service import create_token

APP_USER_CODE_TTL = timedelta(minutes=10)


class TokenError(Exception):
    """An RFC 6749 section 5.2 error: `error` code and a human-readable description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    user_id: uuid.UUID
    organization_id: uuid.UUID
    app_id: uuid.UUID


async def issue_app_user_code(*, session: AsyncSession, installation: AppInstallation) -> str:
    """A fresh single-use code for the installation's app user; only its digest is stored."""
    if installation.app_user_id is None:
        raise ValueError("the installation has no app user")
    now = utcnow()
    # Old codes of this installation are dead weight: drop used and expired ones (indexed).
    await session.execute(
        delete(AppUserCode).where(
            AppUserCode.app_installation_id == installation.id,
            or_(AppUserCode.used_at.is_not(None), AppUserCode.expires_at <= now),
        )
    )
    code = secrets.token_urlsafe(32)
    session.add(
        AppUserCode(
            code_digest=digest(code),
            app_id=installation.app_id,
            app_installation_id=installation.id,
            user_id=installation.app_user_id,
            created_at=now,
            expires_at=now + APP_USER_CODE_TTL,
        )
    )
    await session.flush()
    return code


def client_app_id(client_id: str) -> uuid.UUID | None:
    """The app id a `client_id` spells (any form `uuid.UUID` reads: upper case, braces, `urn:uuid:`)."""
    try:
        return uuid.UUID(client_id)
    except ValueError:
        return None


async def authenticate_client(*, session: AsyncSession, app_id: uuid.UUID, client_secret: str) -> App:
    """The app whose id and secret these are; `invalid_client` otherwise (constant-time compare)."""
    app = await session.get(App, app_id)
    if not app_secret_matches(app, client_secret) or app is None:
        raise invalid_client()
    return app


def invalid_client() -> TokenError:
    return TokenError("invalid_client", "Client authentication failed: unknown client_id or wrong secret.")


async def exchange_app_user_code(*, session: AsyncSession, app: App, code: str) -> IssuedToken:
    """Consume the code atomically and mint a persistent API token for its app user."""
    now = utcnow()
    # One UPDATE decides: a concurrent exchange of the same code blocks on the row lock and
    # then finds `used_at` set, so at most one exchange succeeds.
    consumed = (
        await session.execute(
            update(AppUserCode)
            .where(
                AppUserCode.code_digest == digest(code),
                AppUserCode.app_id == app.id,
                AppUserCode.used_at.is_(None),
                AppUserCode.expires_at > now,
            )
            .values(used_at=now)
            .returning(AppUserCode.app_installation_id, AppUserCode.user_id)
        )
    ).first()
    if consumed is None:
        raise TokenError(
            "invalid_grant", "The code is invalid, expired, already used or issued to another app."
        )
    installation_id, user_id = consumed
    row = (
        await session.execute(
            select(AppInstallation, User)
            .join(User, User.id == AppInstallation.app_user_id)
            .where(
                AppInstallation.id == installation_id,
                AppInstallation.app_id == app.id,
                User.id == user_id,
                User.deleted_at.is_(None),
            )
        )
    ).first()
    if row is None:
        raise TokenError("invalid_grant", "The installation of this code no longer exists.")
    installation, user = row
    _, key = await create_token(session=session, user_id=user.id, app_installation_id=installation.id)
    return IssuedToken(access_token=key, user_id=user.id, organization_id=user.organization_id, app_id=app.id)
