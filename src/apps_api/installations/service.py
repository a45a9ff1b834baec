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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, Uuid, bindparam, delete, insert, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from apps_api.auth.policy import Reader, missing_grants
from apps_api.catalog.repository import APP_ROW_COLUMNS, APP_ROW_FROM
from apps_api.catalog.visibility import may_install
from apps_api.delivery import channels
from apps_api.delivery.events import (
    Action,
    Change,
    emit_many,
    event_parameters,
    insert_events,
)
from apps_api.delivery.triggers.scheduling import schedule_install_trigger, schedule_uninstall_trigger
from apps_api.installations.schemas import AppInstallation as AppInstallationView
from apps_api.installations.schemas import installation_json
from apps_api.kit.crypto import EncryptedText, decrypt_optional
from apps_api.kit.driver import SessionStatement
from apps_api.kit.errors import BadRequest, Conflict, Forbidden, NotFound
from apps_api.kit.schemas import UserEmbed
from apps_api.models import (
    SCOPES,
    ApiToken,
    App,
    AppInstallation,
    AppShare,
    Organization,
    User,
)
from apps_api.models.base import utcnow
from apps_api.platform import service as platform_service

NAME_MAX_LENGTH = 150


@dataclass(frozen=True)
class AppUserInput:
    """Names for the app user, overriding the app's defaults; None keeps the default."""

    first_name: str | None = None
    last_name: str | None = None
    alias: str | None = None


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


def require_apps_feature(organization: Organization) -> None:
    """403 unless the organization may install apps."""
    if not organization.has_feature("apps"):
        raise Forbidden(
            "Your organization does not have the Apps feature; the operator of this service can enable it."
        )


# Built once (every install runs them), run straight on the session's connection
# (kit/driver.py): the ORM's compile, bulk, loading and synchronize machinery cost more CPU than
# these statements' round trips (the caller sets the new count on a loaded app itself).
_APPS = cast(Table, App.__table__)
_INSTALLATIONS = cast(Table, AppInstallation.__table__)
_LOCK_APP = SessionStatement(
    select(_APPS.c.id).where(_APPS.c.id == bindparam("app_id")).with_for_update(key_share=True)
)
_ADD_TO_INSTALLATION_COUNT = SessionStatement(
    update(_APPS)
    .where(_APPS.c.id == bindparam("app_id"))
    .values(installation_count=_APPS.c.installation_count + bindparam("delta"), updated_at=_APPS.c.updated_at)
    .returning(_APPS.c.installation_count)
)
_INSTALLATION_COLUMNS = (
    "id",
    "app_id",
    "organization_id",
    "app_user_id",
    "allowed_scopes",
    "created_by_user_id",
    "created_at",
    "updated_at",
)
_INSTALL_WRITES: dict[int, SessionStatement] = {}


def _install_writes(event_count: int) -> SessionStatement:
    """The installation row, the app's counter and the events, in one statement (one round trip).

    Data-modifying CTEs: all or nothing, and the unique (app_id, organization_id) constraint
    still decides between concurrent installs (the statement fails, no event is written).
    """
    statement = _INSTALL_WRITES.get(event_count)
    if statement is None:
        installation = insert(_INSTALLATIONS).values(
            {column: bindparam(column) for column in _INSTALLATION_COLUMNS}
        )
        counter = (
            update(_APPS)
            .where(_APPS.c.id == bindparam("app_id"))
            .values(
                installation_count=_APPS.c.installation_count + bindparam("delta"),
                updated_at=_APPS.c.updated_at,
            )
        )
        statement = _INSTALL_WRITES[event_count] = SessionStatement(
            insert_events(event_count).add_cte(installation.cte("installation"), counter.cte("counter"))
        )
    return statement


# The organization is a bind parameter, so "may install" takes its one-app form
# (primary-key probes of partnerships and shares for this row). The app's whole row with what
# its view embeds: the installation's view is built from it.
_INSTALLABLE_APP = SessionStatement(
    select(*APP_ROW_COLUMNS)
    .select_from(APP_ROW_FROM)
    .where(_APPS.c.id == bindparam("app_id"), may_install(bindparam("organization_id", type_=Uuid)))
)


async def lock_app(*, session: AsyncSession, app_id: uuid.UUID) -> None:
    """Lock the app's row for this transaction (installs and audience changes serialize on it)."""
    await _LOCK_APP.fetch(session, app_id=app_id)


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


def _check_scopes(app: Any, allowed_scopes: list[str] | None) -> list[str]:
    """The scopes to grant, checked against the app's row."""
    if allowed_scopes is None:
        return sorted(set(app["required_scopes"]))
    unknown = sorted(set(allowed_scopes) - set(SCOPES))
    if unknown:
        raise BadRequest(
            errors={"allowed_scopes": [f"Unknown scope: {', '.join(unknown)}. Allowed: {', '.join(SCOPES)}."]}
        )
    missing = sorted(set(app["required_scopes"]) - set(allowed_scopes))
    if missing:
        raise BadRequest(
            errors={"allowed_scopes": [f"Must include the app's required scopes: {', '.join(missing)}."]}
        )
    return sorted(set(allowed_scopes))


def _check_grantable(granter: Reader | None, scopes: list[str]) -> None:
    """403 when the installing user would grant the app a permission they do not hold themselves."""
    missing = missing_grants(granter=granter, scopes=frozenset(scopes))
    if missing:
        raise Forbidden(
            f"You cannot grant the app permissions you do not have: {', '.join(missing)}. "
            "A user of your organization who has them, or your administrator, can install it."
        )


def _app_user_names(app: Any, given: AppUserInput | None) -> tuple[str | None, str | None, str | None]:
    """The app user's names: the given ones over the defaults of the app's row."""
    given = given or AppUserInput()
    errors: dict[str, list[str]] = {}
    names: dict[str, str | None] = {}
    defaults = {
        "first_name": app["app_user_default_first_name"],
        "last_name": app["app_user_default_last_name"],
        "alias": app["app_user_default_alias"],
    }
    for field, default in defaults.items():
        value: str | None = getattr(given, field)
        if value is not None:
            value = value.strip()
            if not value:
                errors[f"app_user.{field}"] = ["This field may not be blank."]
            elif len(value) > NAME_MAX_LENGTH:
                errors[f"app_user.{field}"] = [
                    f"Ensure this field has no more than {NAME_MAX_LENGTH} characters."
                ]
        names[field] = value if value is not None else default
    for field in ("first_name", "last_name"):
        if names[field] is None and f"app_user.{field}" not in errors:
            errors[f"app_user.{field}"] = ["This field is required: the app has no default."]
    if errors:
        raise BadRequest(errors=errors)
    return names["first_name"], names["last_name"], names["alias"]


async def _create_app_user(
    *, session: AsyncSession, organization: Organization, names: tuple[str | None, str | None, str | None]
) -> User:
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
    rows = await _ADD_TO_INSTALLATION_COUNT.fetch(session, app_id=app_id, delta=delta)
    count: int = rows[0]["installation_count"]
    return count


def _installation_changes(
    *, view: dict[str, Any], owner_id: uuid.UUID, app_user: dict[str, Any] | None
) -> list[Change]:
    """The events of an installation's view: the installing organization's and the owner's."""
    # The owner's view has the same attributes (test_events_of_install_and_uninstall checks
    # it), and the installed app's view is the installation's embedded `app`.
    organization_id, app_id = view["organization_id"], view["app_id"]
    changes = [
        Change(
            organization_id,
            channels.APP_INSTALLATIONS.channel(organization_id=organization_id),
            view["id"],
            view,
            channels.APP_INSTALLATIONS.scope,
        ),
        Change(
            organization_id,
            channels.INSTALLED_APPS.channel(organization_id=organization_id),
            app_id,
            view["app"],
            channels.INSTALLED_APPS.scope,
        ),
        Change(
            owner_id,
            channels.OWNED_APP_INSTALLATIONS.channel(app_organization_id=owner_id, app_id=app_id),
            view["id"],
            view,
            channels.OWNED_APP_INSTALLATIONS.scope,
        ),
    ]
    if app_user is not None:
        changes.append(
            Change(
                organization_id,
                channels.USERS.channel(organization_id=organization_id),
                app_user["id"],
                app_user,
                channels.USERS.scope,
            )
        )
    return changes


async def _emit_installation_events(
    *, session: AsyncSession, installation: AppInstallation, action: Action, actor_user_id: uuid.UUID | None
) -> None:
    """The events of a loaded installation, in one INSERT."""
    view = AppInstallationView.model_validate(installation).model_dump(mode="json")
    app_user = (
        None if installation.app_user is None else UserEmbed.of(installation.app_user).model_dump(mode="json")
    )
    changes = _installation_changes(
        view=view, owner_id=installation.app.owned_by_organization_id, app_user=app_user
    )
    await emit_many(session=session, changes=changes, action=action, actor_user_id=actor_user_id)


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
    require_apps_feature(organization)
    await _LOCK_APP.fetch(session, app_id=app_id)
    # Checked under the lock, in a fresh statement: a concurrent unshare or publicity
    # change that committed meanwhile is seen here.
    rows = await _INSTALLABLE_APP.fetch(session, app_id=app_id, organization_id=organization.id)
    if not rows:
        raise NotFound("No installable app found with the given ID.")
    app = rows[0]
    scopes = _check_scopes(app, allowed_scopes)
    _check_grantable(granter, scopes)
    names = _app_user_names(app, app_user) if app["is_app_user_required"] else None
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
    changes = _installation_changes(
        view=view, owner_id=app["owned_by_organization_id"], app_user=app_user_view
    )
    parameters = event_parameters(changes=changes, action="added", actor_user_id=actor_user_id)
    try:
        await _install_writes(len(changes)).fetch(session, **values, **parameters, delta=1)
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
        await _emit_installation_events(
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


async def uninstall_ineligible(
    *,
    session: AsyncSession,
    app_ids: Sequence[uuid.UUID],
    organization_ids: Sequence[uuid.UUID] | None = None,
    actor_user_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Uninstall the apps wherever they may no longer be installed; returns the installation ids."""
    if not app_ids:
        return []
    statement = (
        select(AppInstallation)
        .join(App, App.id == AppInstallation.app_id)
        .where(AppInstallation.app_id.in_(app_ids), ~may_install(AppInstallation.organization_id))
        .order_by(AppInstallation.app_id, AppInstallation.id)
    )
    if organization_ids is not None:
        statement = statement.where(AppInstallation.organization_id.in_(organization_ids))
    stale = list((await session.scalars(statement)).all())
    for installation in stale:
        await uninstall(session=session, installation=installation, actor_user_id=actor_user_id)
    return [installation.id for installation in stale]


async def uninstall_everywhere(
    *, session: AsyncSession, app: App, actor_user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Uninstall the app from every organization (before the app is deleted)."""
    installations = list(
        (
            await session.scalars(
                select(AppInstallation).where(AppInstallation.app_id == app.id).order_by(AppInstallation.id)
            )
        ).all()
    )
    for installation in installations:
        await uninstall(session=session, installation=installation, actor_user_id=actor_user_id)
    return [installation.id for installation in installations]


async def uninstall_all_in(
    *, session: AsyncSession, organization_id: uuid.UUID, actor_user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Uninstall every app installed in the organization (it lost the Apps feature)."""
    installations = list(
        (
            await session.scalars(
                select(AppInstallation)
                .where(AppInstallation.organization_id == organization_id)
                .order_by(AppInstallation.app_id, AppInstallation.id)
            )
        ).all()
    )
    for installation in installations:
        await uninstall(session=session, installation=installation, actor_user_id=actor_user_id)
    return [installation.id for installation in installations]


async def end_partnership(
    *, session: AsyncSession, a: uuid.UUID, b: uuid.UUID, actor_user_id: uuid.UUID | None = None
) -> tuple[bool, list[uuid.UUID]]:
    """End a partnership: drop the shares between the two and uninstall what either may no longer install.

    Returns (whether a partnership existed, the ids of the installations removed).
    """
    await platform_service.get_organization(session=session, organization_id=a)
    await platform_service.get_organization(session=session, organization_id=b)
    app_ids = list(
        (
            await session.scalars(
                select(App.id)
                .where(App.owned_by_organization_id.in_((a, b)))
                .order_by(App.id)
                .with_for_update(key_share=True)
            )
        ).all()
    )
    removed = await platform_service.remove_partnership(session=session, a=a, b=b)
    for owner, partner in ((a, b), (b, a)):
        await session.execute(
            delete(AppShare).where(
                AppShare.organization_id == partner,
                AppShare.app_id.in_(select(App.id).where(App.owned_by_organization_id == owner)),
            )
        )
    uninstalled: list[uuid.UUID] = []
    for owner, partner in ((a, b), (b, a)):
        owned = select(App.id).where(App.owned_by_organization_id == owner, App.id.in_(app_ids))
        owned_ids = list((await session.scalars(owned)).all())
        uninstalled += await uninstall_ineligible(
            session=session, app_ids=owned_ids, organization_ids=[partner], actor_user_id=actor_user_id
        )
    return removed, uninstalled
