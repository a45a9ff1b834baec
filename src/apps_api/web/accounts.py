"""Who signs in to the browser pages: the password check under the throttle, and the live user
of a session cookie. One definition for the install flow and the console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import (
    constant_time_equals,
    hash_password_bounded,
    password_needs_rehash,
    verify_password_bounded,
)
from apps_api.kit.throttle import ADDRESS_MAX_FAILURES, Subject, locked_for, record_failure, record_success
from apps_api.models import Organization, User
from apps_api.web.session import BrowserSession, DeviceCookie, password_digest


@dataclass(frozen=True)
class LoggedIn:
    user: User
    organization: Organization


async def _live_user_by_email(
    *, session: AsyncSession, email: str
) -> tuple[User | None, Organization | None]:
    """The live user of a plausible email address (case-insensitive) and their organization."""
    if not email or "@" not in email or len(email) > 254:
        return None, None
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.organization_id)
            .where(func.lower(User.email) == email.strip().lower(), User.deleted_at.is_(None))
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


async def authenticate_login(
    *, session: AsyncSession, email: str, password: str, require_settings: bool = True
) -> LoggedIn | None:
    """The live user with this email and password who may install apps (`settings`), else None.

    Unknown email, wrong password, deleted user and missing permission all give None after
    the same argon2 work, so the page cannot tell them apart. The console passes
    `require_settings=False`: its pages run the API's own access checks (a 403 page).
    """
    user, organization = await _live_user_by_email(session=session, email=email)
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
