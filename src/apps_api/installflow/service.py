"""The install web flow's logic: who is logged in, what the pages show, where the browser goes next."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.triggers.location import trigger_location
from apps_api.installflow.session import BrowserSession, DeviceCookie, password_digest
from apps_api.kit.security import (
    constant_time_equals,
    hash_password_bounded,
    password_needs_rehash,
    verify_password_bounded,
)
from apps_api.kit.throttle import ADDRESS_MAX_FAILURES, Subject, locked_for, record_failure, record_success
from apps_api.models import App, AppInstallation, Organization, User
from apps_api.settings import Settings

SCOPE_DESCRIPTIONS = {
    "reports": "read your organization's reports",
    "settings": "read and change your organization's settings",
    "users": "read and manage your organization's users",
}


@dataclass(frozen=True)
class LoggedIn:
    user: User
    organization: Organization


async def authenticate_login(
    *, session: AsyncSession, email: str, password: str, require_settings: bool = True
) -> LoggedIn | None:
    """The live user with this email and password who may install apps (`settings`), else None.

    Unknown email, wrong password, deleted user and missing permission all give None after
    the same argon2 work, so the page cannot tell them apart. The console passes
    `require_settings=False`: its pages run the API's own access checks (a 403 page).
    """
    row = None
    if email and "@" in email and len(email) <= 254:
        row = (
            await session.execute(
                select(User, Organization)
                .join(Organization, Organization.id == User.organization_id)
                .where(func.lower(User.email) == email.strip().lower(), User.deleted_at.is_(None))
                .limit(1)
            )
        ).first()
    user, organization = row if row is not None else (None, None)
    # argon2 takes tens of milliseconds of CPU: off the event loop, within the process's bound
    # (HashingBusy, a 503, when every slot stays busy).
    ok = await verify_password_bounded(user.password_hash if user else None, password)
    if not ok or user is None or organization is None or user.is_bot:
        return None
    if require_settings and not user.has_permission("settings"):
        return None
    if user.password_hash is not None and password_needs_rehash(user.password_hash):
        # Parameters changed since this hash was made: the password is at hand only now.
        user.password_hash = await hash_password_bounded(password)
        await session.flush()
    return LoggedIn(user=user, organization=organization)


@dataclass(frozen=True)
class LoginAttempt:
    """A login under the throttle: the user, or none; `locked_seconds` > 0 when the throttle refused."""

    logged_in: LoggedIn | None
    locked_seconds: int


async def throttled_login(
    *,
    session: AsyncSession,
    redis: Any,
    email: str,
    password: str,
    client_host: str,
    device: DeviceCookie | None = None,
    require_settings: bool = True,
) -> LoginAttempt:
    """One login attempt for every sign-in form (install flow, console), throttled across processes
    (Redis) per account and per client address, or, from a browser holding a device cookie of the
    account, per device cookie only: a stranger's failures then lock neither. A locked subject is
    refused before any password work. Raises HashingBusy or ThrottleUnavailable (a 503)."""
    account = email.strip().lower()
    if device is not None and account and await _is_device_of(session=session, device=device, email=account):
        subjects = [Subject("login-device", device.nonce)]
    else:
        subjects = [Subject("login-address", client_host, max_failures=ADDRESS_MAX_FAILURES)]
        if account:
            subjects.insert(0, Subject("login-account", account))
    locked = await locked_for(redis, subjects)
    if locked:
        return LoginAttempt(None, locked)
    logged_in = await authenticate_login(
        session=session, email=email, password=password, require_settings=require_settings
    )
    if logged_in is None:
        return LoginAttempt(None, await record_failure(redis, subjects))
    # Not the client address's failures: others may share it.
    await record_success(redis, [subject for subject in subjects if subject.kind != "login-address"])
    return LoginAttempt(logged_in, 0)


async def _is_device_of(*, session: AsyncSession, device: DeviceCookie, email: str) -> bool:
    """Whether the device cookie was issued to the live user of this (lower-cased) email."""
    found = await session.scalar(
        select(User.id).where(
            User.id == device.user_id, func.lower(User.email) == email, User.deleted_at.is_(None)
        )
    )
    return found is not None


async def session_user(
    *, session: AsyncSession, browser_session: BrowserSession | None, require_settings: bool = True
) -> LoggedIn | None:
    """The logged-in user of a cookie, while they are live, keep their password (and `settings`,
    unless the console asks: it checks `settings` as the API does) and have not logged out (their
    session epoch is the cookie's)."""
    if browser_session is None or browser_session.user_id is None:
        return None
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.id == browser_session.user_id, User.deleted_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    user, organization = row
    if browser_session.epoch != user.session_epoch:
        return None  # logged out, password changed or user deleted since this session began
    if (require_settings and not user.has_permission("settings")) or not constant_time_equals(
        password_digest(user), browser_session.password_digest or ""
    ):
        return None
    return LoggedIn(user=user, organization=organization)


async def is_installed(*, session: AsyncSession, app_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
    installed = await session.scalar(
        select(AppInstallation.id).where(
            AppInstallation.app_id == app_id, AppInstallation.organization_id == organization_id
        )
    )
    return installed is not None


def _web_url(value: str | None) -> str | None:
    """Only http(s) URLs become links or images (never `javascript:`)."""
    if value and value.lower().startswith(("https://", "http://")):
        return value
    return None


def app_view(app: App) -> dict[str, Any]:
    """Plain values the confirmation page shows (readable after a rollback too)."""
    return {
        "id": str(app.id),
        "name": app.name,
        "description": app.description,
        "icon_url": _web_url(app.icon_asset.url if app.icon_asset is not None else None),
        "owner_name": app.owned_by_organization.name,
        "scopes": [
            {"name": scope, "description": SCOPE_DESCRIPTIONS.get(scope, scope)}
            for scope in app.required_scopes
        ],
        "is_app_user_required": app.is_app_user_required,
        "terms_of_service_url": _web_url(app.terms_of_service_url),
        "privacy_policy_url": _web_url(app.privacy_policy_url),
        "trigger_origin": trigger_origin(app),
    }


def has_install_trigger(app: App) -> bool:
    return "install" in app.trigger_conditions and bool(app.trigger_url)


def trigger_origin(app: App) -> str | None:
    """The origin the browser is sent to after installing (for the page's CSP form-action)."""
    if not has_install_trigger(app):
        return None
    parts = urlsplit(app.trigger_url or "")
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def public_origin(*, request_base_url: str, settings: Settings) -> str:
    """This service's public origin: APPS_API_PUBLIC_BASE_URL's, else the request's (`scheme://host[:port]`)."""
    parts = urlsplit(settings.public_base_url or request_base_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def absolute_url(path: str, *, request_base_url: str, settings: Settings) -> str:
    """`path` on this service's public origin."""
    origin = (settings.public_base_url or request_base_url).rstrip("/")
    return origin + path


async def trigger_redirect(
    *,
    session: AsyncSession,
    settings: Settings,
    type_: str,
    app: App,
    installation: AppInstallation,
    actor: User,
    redirect_uri: str,
) -> str:
    """`trigger_url?type=<type_>&data=<JWT>&token=<JWT>&redirect_uri=<URL>` (docs/design.md section 7):
    the install flow's redirect and the console's `setup` / `manual_*`, built as the worker's."""
    return await trigger_location(
        session=session,
        settings=settings,
        type_=type_,
        trigger_url=app.trigger_url or "",
        app_secret=app.secret,
        app_id=app.id,
        organization_id=installation.organization_id,
        installation_id=installation.id,
        actor_user_id=actor.id,
        app_user_id=installation.app_user_id,
        redirect_uri=redirect_uri,
    )
