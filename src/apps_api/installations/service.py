"""Installing and uninstalling apps (docs/design.md sections 6 and 7).

Every path that ends an installation (the installer, the owner, a publicity change, an
unshare, an ended partnership, a deleted app) goes through `uninstall()`, so each one
emits the same events, schedules the uninstall trigger and retires the app user.

Locking: whoever changes who may install an app, or installs or uninstalls it, first
locks the app's row (`FOR NO KEY UPDATE`), then touches installations. Installs and
changes of an app's audience therefore serialize, and an install re-checks "may install"
in a fresh statement after taking the lock, so it never slips past a concurrent change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from apps_api.auth.policy import Reader
from apps_api.catalog.visibility import may_install
from apps_api.delivery.events import event_parameters
from apps_api.delivery.triggers.scheduling import schedule_install_trigger, schedule_uninstall_trigger
from apps_api.installations import rules, statements
from apps_api.installations.changes import emit_installation_events, installation_changes
from apps_api.installations.rules import AppUserInput, AppUserNames
from apps_api.installations.schemas import installation_json
from apps_api.kit.crypto import EncryptedText, decrypt_optional
from apps_api.kit.errors import Conflict, NotFound
from apps_api.kit.schemas import UserEmbed
from apps_api.models import ApiToken, App, AppInstallation, Organization, User
from apps_api.models.base import utcnow
from apps_api.platform import service as platform_service

__all__ = [
    "AppUserInput",
    "app_options",
    "find_installable_app",
    "install",
    "install_app",
    "installation_options",
    "lock_app",
    "uninstall",
]


def app_options() -> tuple[Any, ...]:
    """Eager loads of an app's embedded objects."""
    return (joinedload(App.owned_by_organization), joinedload(App.icon_asset))


def installation_options() -> tuple[Any, ...]:
    """Eager loads of everything an installation view embeds."""
    return (
        joinedload(AppInstallation.app).joinedload(App.owned_by_organization),
        joinedload(AppInstallation.app).joinedload(App.icon_asset),
        joinedload(AppInstallation.organization),
        joinedload(AppInstallation.app_user),
    )


async def lock_app(*, session: AsyncSession, app_id: uuid.UUID) -> None:
    """Lock the app's row for this transaction (installs and audience changes serialize on it)."""
    await statements.LOCK_APP.fetch(session, app_id=app_id)


async def find_installable_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    """The app if the organization may install it (docs/design.md section 6), its embedded objects loaded."""
    statement = (
        select(App)
        .where(App.id == app_id, may_install(organization_id))
        .options(*app_options())
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).unique().scalar_one_or_none()


async def _create_app_user(*, session: AsyncSession, organization: Organization, names: AppUserNames) -> User:
    """The installation's bot user: no email, no password, no permissions."""
    first_name, last_name, alias = names
    return await platform_service.create_user(
        session=session,
        organization_id=organization.id,
        permissions=[],
        first_name=first_name,
        last_name=last_name,
        alias=alias,
        is_bot=True,
    )


async def _add_to_installation_count(*, session: AsyncSession, app_id: uuid.UUID, delta: int) -> int:
    """Atomic counter update on the app's row (no COUNT anywhere); keeps `updated_at`; returns the count."""
    rows = await statements.ADD_TO_INSTALLATION_COUNT.fetch(session, app_id=app_id, delta=delta)
    count: int = rows[0]["installation_count"]
    return count


@dataclass(frozen=True)
class _Installed:
    """What `_install()` wrote: the installation's column values, its app's row and app user, the view."""

    values: dict[str, Any]
    app: Any
    installation_count: int
    app_user: User | None
    view: dict[str, Any]


async def _install(
    *,
    session: AsyncSession,
    organization: Organization,
    app_id: uuid.UUID,
    actor_user_id: uuid.UUID | None,
    granter: Reader | None,
    allowed_scopes: list[str] | None,
    app_user: AppUserInput | None,
) -> _Installed:
    """The install itself, in the caller's transaction (see `install_app()` and `install()`)."""
    rules.require_apps_feature(organization)
    await statements.LOCK_APP.fetch(session, app_id=app_id)
    # Checked under the lock, in a fresh statement: a concurrent unshare or publicity
    # change that committed meanwhile is seen here.
    rows = await statements.INSTALLABLE_APP.fetch(session, app_id=app_id, organization_id=organization.id)
    if not rows:
        raise NotFound("No installable app found with the given ID.")
    app = rows[0]
    scopes = rules.check_scopes(app, allowed_scopes)
    rules.check_grantable(granter, scopes)
    names = rules.app_user_names(app, app_user) if app["is_app_user_required"] else None
    user = None
    if names is not None:
        user = await _create_app_user(session=session, organization=organization, names=names)
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "app_id": app["id"],
        "organization_id": organization.id,
        "app_user_id": user.id if user is not None else None,
        "allowed_scopes": scopes,
        "created_by_user_id": actor_user_id,
        "created_at": now,
        "updated_at": now,
    }
    # The row is locked and was read after the lock: every change of the counter (installs and
    # uninstalls) locks it first, so this is the count the UPDATE below leaves.
    count = app["installation_count"] + 1
    app_user_view = None if user is None else UserEmbed.of(user).model_dump(mode="json")
    view = installation_json(
        values=values,
        app=app,
        installation_count=count,
        organization_name=organization.name,
        app_user=app_user_view,
    )
    changes = installation_changes(
        view=view, owner_id=app["owned_by_organization_id"], app_user=app_user_view
    )
    parameters = event_parameters(changes=changes, action="added", actor_user_id=actor_user_id)
    try:
        await statements.install_writes(len(changes)).fetch(session, **values, **parameters, delta=1)
    except IntegrityError as exc:
        if "uq_app_installations_app_id_organization_id" in str(exc.orig):
            raise Conflict("The app is already installed in this organization.") from None
        raise
    return _Installed(values=values, app=app, installation_count=count, app_user=user, view=view)


async def install_app(
    *,
    session: AsyncSession,
    organization: Organization,
    app: App,
    actor: User | None,
    granter: Reader | None,
    allowed_scopes: list[str] | None = None,
    app_user: AppUserInput | None = None,
) -> AppInstallation:
    """Install atomically: row, app user, installation_count, events.

    Forbidden (403) without the `apps` feature or when the granted scopes exceed the
    `granter`'s own permissions (None: an operator), NotFound (404) when the organization may not
    install the app, Conflict (409) when already installed (the unique constraint decides
    between concurrent installs), BadRequest (400) for scopes not covering required_scopes
    or bad app-user names. allowed_scopes=None means the app's required_scopes.
    """
    # A savepoint: any failure below leaves nothing behind, even if the caller goes on
    # (the install web flow renders a page after a refused install).
    async with session.begin_nested():
        installed = await _install(
            session=session,
            organization=organization,
            app_id=app.id,
            actor_user_id=actor.id if actor is not None else None,
            granter=granter,
            allowed_scopes=allowed_scopes,
            app_user=app_user,
        )
    # The caller's app as checked under the lock (what `populate_existing` did for an ORM
    # load), and the installation as a loaded object: the rows are written, nothing to flush.
    for attribute in inspect(App).column_attrs:
        value = installed.app[attribute.columns[0].name]
        if isinstance(attribute.columns[0].type, EncryptedText):
            value = decrypt_optional(value)  # a raw row holds the secrets' ciphertext
        set_committed_value(app, attribute.key, value)
    set_committed_value(app, "installation_count", installed.installation_count)
    installation = AppInstallation(**installed.values)
    make_transient_to_detached(installation)
    session.add(installation)
    set_committed_value(installation, "app", app)
    set_committed_value(installation, "organization", organization)
    set_committed_value(installation, "app_user", installed.app_user)
    return installation


async def install(
    *,
    session: AsyncSession,
    organization: Organization,
    app_id: uuid.UUID,
    actor_user_id: uuid.UUID | None,
    granter: Reader | None,
    allowed_scopes: list[str] | None = None,
    app_user: AppUserInput | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """`install_app()` for a caller that ends its transaction on any error (the API); returns the view.

    No browser is there to follow an `install` trigger: the worker sends it, with the installed
    app's console page on `base_url` (this service's public base URL) as its `redirect_uri`.

    No savepoint: the API's unit of work rolls the whole transaction back on any exception,
    which leaves nothing behind just as well, two round trips cheaper. Same checks, same order.
    The view is JSON-ready (installations/schemas.installation_json). The actor is an id: the
    API's caller need not be built as an ORM object.
    """
    installed = await _install(
        session=session,
        organization=organization,
        app_id=app_id,
        actor_user_id=actor_user_id,
        granter=granter,
        allowed_scopes=allowed_scopes,
        app_user=app_user,
    )
    await schedule_install_trigger(
        session=session,
        app=installed.app,
        installation_id=installed.values["id"],
        organization_id=organization.id,
        app_user_id=installed.values["app_user_id"],
        actor_user_id=actor_user_id,
        base_url=base_url,
    )
    return installed.view


async def uninstall(
    *, session: AsyncSession, installation: AppInstallation, actor_user_id: uuid.UUID | None
) -> None:
    """Uninstall atomically by any path: events, uninstall trigger, app user retired, count."""
    async with session.begin_nested():
        await lock_app(session=session, app_id=installation.app_id)
        current = (
            (
                await session.execute(
                    select(AppInstallation)
                    .where(AppInstallation.id == installation.id)
                    .options(*installation_options())
                    .with_for_update(of=AppInstallation)
                    .execution_options(populate_existing=True)
                )
            )
            .unique()
            .scalar_one_or_none()
        )
        if current is None:
            return  # Someone else uninstalled it first.
        await emit_installation_events(
            session=session, installation=current, action="removed", actor_user_id=actor_user_id
        )
        # Before the row goes: the trigger carries the installation's ids.
        await schedule_uninstall_trigger(
            session=session, app=current.app, installation=current, actor_user_id=actor_user_id
        )
        now = utcnow()
        revoke = [ApiToken.app_installation_id == current.id]
        if current.app_user is not None:
            revoke.append(ApiToken.user_id == current.app_user.id)
            if current.app_user.deleted_at is None:
                current.app_user.deleted_at = now
        await session.execute(
            update(ApiToken).where(or_(*revoke), ApiToken.revoked_at.is_(None)).values(revoked_at=now)
        )
        count = await _add_to_installation_count(session=session, app_id=current.app_id, delta=-1)
        set_committed_value(current.app, "installation_count", count)
        await session.delete(current)
        await session.flush()
