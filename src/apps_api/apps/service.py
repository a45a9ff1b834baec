"""Owned apps and app shares: validation, the App provider rule, and auto-uninstall.

Whenever a change narrows who may install an app (publicity set to false, a share
removed, the app deleted), every installation whose organization may no longer install
it is uninstalled through `installations.service.uninstall()`, in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import String, Table, Uuid, bindparam, func, insert, literal_column, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.apps import repository
from apps_api.apps.schemas import (
    EDITABLE,
    REQUIRED_ATTRIBUTES,
    AppShareInput,
    OwnedAppInput,
    owned_app_json,
)
from apps_api.auth.service import Principal
from apps_api.catalog import repository as catalog
from apps_api.catalog.views import InstalledApp
from apps_api.delivery.channels import INSTALLED_APPS, WEBHOOKS
from apps_api.delivery.events import emit
from apps_api.delivery.matching import ORGANIZATION_ID
from apps_api.installations import cascade
from apps_api.installations import service as installations
from apps_api.kit.crypto import encrypt
from apps_api.kit.driver import CompiledStatement, Database, with_column_defaults
from apps_api.kit.errors import BadRequest, Conflict, NotFound, PaymentRequired
from apps_api.kit.security import new_app_secret
from apps_api.kit.views import dumps
from apps_api.models import App, AppShare, Asset
from apps_api.models.base import utcnow
from apps_api.platform.service import are_partners

PUBLICITY = ("is_available_to_anyone", "is_available_to_partners")
# What giosg approved (docs/design.md section 6): everything installing users are shown or given
# (the terms and privacy links, the bot user and the names it goes by included). Changing any
# of these clears the approval, so an approved app cannot become something else and stay
# public. Other edits keep it.
APPROVED_ATTRIBUTES = (
    "name",
    "description",
    "icon_asset_id",
    "required_scopes",
    "trigger_url",
    "trigger_conditions",
    "terms_of_service_url",
    "privacy_policy_url",
    "is_app_user_required",
    "app_user_default_first_name",
    "app_user_default_last_name",
    "app_user_default_alias",
)
# One `changed` on `installed_apps` per installing organization, in one statement however many
# installations the app has; the resource is the changed attributes of the installed view. The
# channel is the family's pattern (delivery/channels.py) around the organization's id.
_INSTALLED_APP_CHANGED = text(
    """
    INSERT INTO events (organization_id, channel, action, resource_id, resource, required_scope,
                        actor_user_id, created_at)
    SELECT organization_id, :channel_prefix || organization_id::text || :channel_suffix, 'changed',
           CAST(:app_id AS text), CAST(:resource AS jsonb), :scope, :actor_user_id, :now
    FROM app_installations
    WHERE app_id = :app_id
    """
).bindparams(bindparam("app_id", type_=Uuid), bindparam("actor_user_id", type_=Uuid))
_INSTALLED_APPS_CHANNEL = INSTALLED_APPS.pattern.partition(ORGANIZATION_ID)
_APPS = cast(Table, App.__table__)
# Every column named (with_column_defaults fills the model's defaults), straight on the
# session's connection: the ORM's and Core's execution machinery cost more CPU than the INSERT.
_INSERT_APP = CompiledStatement(
    insert(_APPS).values({column.key: bindparam(column.key) for column in _APPS.c})
)
# GitHub's limit per owner: every app can fan one event out to its webhooks, so the apps one
# organization owns bound what one of its API calls can make the workers send (docs/webhooks.md, limits).
MAX_APPS_PER_ORGANIZATION = 100
# Concurrent creations by one organization take turns (an advisory lock: locking the
# organization's row would also hold up every insert that references it), and the count runs
# in a statement of its own, after the lock, so it sees what the previous creator committed.
_LOCK_OWNER_APPS = CompiledStatement(
    select(
        func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=String), literal_column("0")))
    )
)
_OWNED_APPS = CompiledStatement(
    select(func.count()).where(_APPS.c.owned_by_organization_id == bindparam("organization_id"))
)
_ASSETS = cast(Table, Asset.__table__)
_ASSET = CompiledStatement(select(_ASSETS).where(_ASSETS.c.id == bindparam("asset_id")))
_ICON_ATTRIBUTES = ("url", "kind", "content_type", "size", "width", "height")
_USER_ATTRIBUTES = ("id", "first_name", "last_name", "alias", "organization_id", "is_bot", "avatar_url")


NETWORK_ALIAS = "is_available_to_network"


def _given(data: OwnedAppInput, *, replace: bool) -> dict[str, Any]:
    """The attributes to write: those sent, plus, on create and PUT, every omitted one's default.

    PUT replaces (docs/api.md): an omitted optional attribute returns to its
    default, as on create. Read-only and unknown attributes were already dropped.
    `is_available_to_network`, the spec's other name of `is_available_to_partners`, becomes it.
    """
    given = {field: getattr(data, field) for field in data.model_fields_set}
    if NETWORK_ALIAS in given:
        given.setdefault("is_available_to_partners", given[NETWORK_ALIAS])
    if replace:
        for field in EDITABLE:
            given.setdefault(field, getattr(data, field))
    return given


async def _validate(
    *,
    db: Database,
    owner: Principal,
    data: OwnedAppInput,
    current: App | None,
    partial: bool,
) -> tuple[dict[str, Any], Any]:
    """400s first (every field at once), then 402; returns the changes to apply and the icon's row."""
    changes = _given(data, replace=not partial)
    errors = _attribute_errors(changes, data=data, current=current, partial=partial)
    icon_asset_id = changes.get("icon_asset_id")
    icon = None
    if icon_asset_id is not None:
        icon = await _owner_asset(db, owner=owner, asset_id=icon_asset_id)
        if icon is None:
            errors["icon_asset_id"] = ["No asset of the app's organization found with this ID."]
    if errors:
        raise BadRequest(errors=errors)
    if not owner.has_feature("app_provider") and any(changes.get(field) is True for field in PUBLICITY):
        raise PaymentRequired(
            "Making an app available to partners or to anyone needs the organization's App provider "
            "feature; the operator of this service can enable it."
        )
    return changes, icon


def _attribute_errors(
    changes: dict[str, Any], *, data: OwnedAppInput, current: App | None, partial: bool
) -> dict[str, list[str]]:
    """The attributes' own 400s: the network alias agreeing, the required ones given (create, PUT),
    the app user's default names when an app user is required. Takes the alias out of `changes`."""
    errors: dict[str, list[str]] = {}
    if changes.pop(NETWORK_ALIAS, changes.get("is_available_to_partners")) != changes.get(
        "is_available_to_partners"
    ):
        errors[NETWORK_ALIAS] = ["An alias of is_available_to_partners: give the same value, or only one."]
    if not partial:
        for field in REQUIRED_ATTRIBUTES:
            if field not in data.model_fields_set:
                errors[field] = ["This field is required."]

    def effective(field: str) -> Any:
        if field in changes:
            return changes[field]
        return getattr(current, field) if current is not None else None

    if effective("is_app_user_required"):
        for field in ("app_user_default_first_name", "app_user_default_last_name"):
            if effective(field) is None and field not in errors:
                errors[field] = ["This field is required when is_app_user_required is true."]
    return errors


async def _owner_asset(db: Database, *, owner: Principal, asset_id: uuid.UUID) -> Any:
    """The asset's whole row (a created app embeds it without another query) if the owner's; else None."""
    rows = await _ASSET.fetch(db, asset_id=asset_id)
    if not rows or rows[0]["organization_id"] != owner.organization_id:
        return None
    return rows[0]


async def _reload(*, session: AsyncSession, app: App) -> App:
    loaded = await catalog.get_owned_app(
        session=session, organization_id=app.owned_by_organization_id, app_id=app.id
    )
    assert loaded is not None
    return loaded


def _owned_app_row(values: dict[str, Any], creator: Principal, icon: Any) -> dict[str, Any]:
    """A new app's values labelled as a row of `repository.OWNED_APPS_PAGE`, for `owned_app_json()`."""
    row = {**values, "owner_name": creator.organization_value("name")}
    row.update({f"icon_{name}": icon[name] if icon is not None else None for name in _ICON_ATTRIBUTES})
    user = {name: creator.user_value(name) for name in _USER_ATTRIBUTES}
    for prefix in ("created_by_", "updated_by_"):
        row.update({prefix + name: value for name, value in user.items()})
    return row


async def create_app(*, db: Database, principal: Principal, data: OwnedAppInput) -> dict[str, Any]:
    """Create an app owned by the caller's organization (not installed anywhere); returns its owned view.

    409 when the organization already owns `MAX_APPS_PER_ORGANIZATION` apps.
    """
    changes, icon = await _validate(db=db, owner=principal, data=data, current=None, partial=False)
    await _LOCK_OWNER_APPS.fetch(db, key=f"owned_apps:{principal.organization_id}")
    owned = await _OWNED_APPS.fetch(db, organization_id=principal.organization_id)
    if owned[0][0] >= MAX_APPS_PER_ORGANIZATION:
        raise Conflict(
            f"An organization may own at most {MAX_APPS_PER_ORGANIZATION} apps and this one owns"
            f" {MAX_APPS_PER_ORGANIZATION}; delete one before creating another."
        )
    secret = new_app_secret()
    values = with_column_defaults(
        _APPS,
        {
            "owned_by_organization_id": principal.organization_id,
            # The INSERT bypasses the ORM (and its EncryptedText): encrypt here.
            "secret": encrypt(secret),
            "created_by_user_id": principal.user_id,
            "updated_by_user_id": principal.user_id,
            **changes,
        },
    )
    await _INSERT_APP.fetch(db, **values)
    # The owned view from what was just written, by the list's own row-to-view function: no
    # reload, no ORM object, no model validation (byte for byte a later GET's, tested).
    # The view takes the secret in plaintext (it decrypts only what is encrypted): not decrypted again.
    return owned_app_json(_owned_app_row({**values, "secret": secret}, principal, icon))


async def update_app(
    *, session: AsyncSession, principal: Principal, app: App, data: OwnedAppInput, partial: bool
) -> App:
    """PUT (`partial=False`, required attributes required) or PATCH; narrowing publicity uninstalls."""
    await installations.lock_app(session=session, app_id=app.id)
    current = await _reload(session=session, app=app)
    changes, _ = await _validate(db=session, owner=principal, data=data, current=current, partial=partial)
    narrowed = any(getattr(current, field) and changes.get(field) is False for field in PUBLICITY)
    before = InstalledApp.model_validate(current).model_dump(mode="json")
    if current.is_approved and any(
        field in changes and changes[field] != getattr(current, field) for field in APPROVED_ATTRIBUTES
    ):
        current.is_approved = False
    for field, value in changes.items():
        setattr(current, field, value)
    current.updated_by_user_id = principal.user_id
    await session.flush()
    if narrowed:
        await cascade.uninstall_ineligible(
            session=session, app_ids=[current.id], actor_user_id=principal.user_id
        )
    updated = await _reload(session=session, app=current)
    await _emit_installed_app_changed(
        session=session, before=before, app=updated, actor_user_id=principal.user_id
    )
    return updated


async def _emit_installed_app_changed(
    *, session: AsyncSession, before: dict[str, Any], app: App, actor_user_id: uuid.UUID | None
) -> None:
    """`changed` on every installing organization's `installed_apps` when the installed view changed."""
    after = InstalledApp.model_validate(app).model_dump(mode="json")
    # The count moves with installs (their own events), and `updated_at` with any edit.
    ignored = ("installation_count", "updated_at")
    changed = {key: value for key, value in after.items() if key not in ignored and before.get(key) != value}
    if not changed:
        return
    changed["updated_at"] = after["updated_at"]
    await session.execute(
        _INSTALLED_APP_CHANGED,
        {
            "app_id": app.id,
            "resource": dumps(changed).decode(),
            "scope": INSTALLED_APPS.scope,
            "channel_prefix": _INSTALLED_APPS_CHANNEL[0],
            "channel_suffix": _INSTALLED_APPS_CHANNEL[2],
            "actor_user_id": actor_user_id,
            "now": utcnow(),
        },
    )


async def withdraw_offers(
    *, session: AsyncSession, organization_id: uuid.UUID, actor_user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """The organization lost App provider: its apps stop being available to partners and anyone.

    As if the owner had set both to false (the 402 rule: only App provider may offer apps), so
    every installation outside the owner that no share keeps is uninstalled; shares stay (they
    need no App provider). Returns the ids of the installations removed.
    """
    offered = list(
        (
            await session.scalars(
                select(App.id)
                .where(
                    App.owned_by_organization_id == organization_id,
                    App.is_available_to_anyone | App.is_available_to_partners,
                )
                .order_by(App.id)
            )
        ).all()
    )
    before: dict[uuid.UUID, dict[str, Any]] = {}
    for app_id in offered:
        await installations.lock_app(session=session, app_id=app_id)
        current = await catalog.get_owned_app(session=session, organization_id=organization_id, app_id=app_id)
        assert current is not None
        before[app_id] = InstalledApp.model_validate(current).model_dump(mode="json")
        current.is_available_to_anyone = False
        current.is_available_to_partners = False
    await session.flush()
    # As update_app(): first the uninstalls, then `changed` to the organizations that keep the app.
    removed = await cascade.uninstall_ineligible(
        session=session, app_ids=offered, actor_user_id=actor_user_id
    )
    for app_id in offered:
        updated = await catalog.get_owned_app(session=session, organization_id=organization_id, app_id=app_id)
        assert updated is not None
        await _emit_installed_app_changed(
            session=session, before=before[app_id], app=updated, actor_user_id=actor_user_id
        )
    return removed


async def rotate_secret(
    *, session: AsyncSession, principal: Principal, app: App, grace_period_seconds: int
) -> App:
    """Give the app a new secret; the previous one keeps working for the grace period (0: not at all).

    A second rotation within a grace period replaces the older secret: only one previous secret
    is ever valid. Emits `changed` on the owner's webhooks channel of the app (without secrets).
    """
    await installations.lock_app(session=session, app_id=app.id)
    current = await _reload(session=session, app=app)
    now = utcnow()
    if grace_period_seconds > 0:
        current.previous_secret = current.secret
        current.previous_secret_expires_at = now + timedelta(seconds=grace_period_seconds)
    else:
        current.previous_secret = None
        current.previous_secret_expires_at = None
    current.secret = new_app_secret()
    current.updated_by_user_id = principal.user_id
    await session.flush()
    await emit(
        session=session,
        organization_id=current.owned_by_organization_id,
        channel=WEBHOOKS.channel(organization_id=current.owned_by_organization_id, app_id=current.id),
        action="changed",
        required_scope=WEBHOOKS.scope,
        resource_id=current.id,
        resource={
            "app_id": str(current.id),
            "secret_rotated_at": now.isoformat().replace("+00:00", "Z"),
            "previous_secret_expires_at": (
                current.previous_secret_expires_at.isoformat().replace("+00:00", "Z")
                if current.previous_secret_expires_at is not None
                else None
            ),
        },
        actor_user_id=principal.user_id,
    )
    return await _reload(session=session, app=current)


async def delete_app(*, session: AsyncSession, principal: Principal, app: App) -> None:
    """Uninstall the app everywhere (events, uninstall triggers), then delete it."""
    await installations.lock_app(session=session, app_id=app.id)
    await cascade.uninstall_everywhere(session=session, app=app, actor_user_id=principal.user_id)
    await session.delete(app)
    await session.flush()


async def create_share(
    *, session: AsyncSession, principal: Principal, app: App, data: AppShareInput
) -> AppShare:
    """Share the app with one partner organization of its owner."""
    partner_id = data.organization_id
    if partner_id == app.owned_by_organization_id or not await are_partners(
        session=session, a=app.owned_by_organization_id, b=partner_id
    ):
        raise BadRequest(errors={"organization_id": ["Must be a partner organization of the app's owner."]})
    share = AppShare(app_id=app.id, organization_id=partner_id, created_by_user_id=principal.user_id)
    try:
        async with session.begin_nested():
            session.add(share)
            await session.flush()
    except IntegrityError:
        raise Conflict("The app is already shared with this organization.") from None
    loaded = await repository.get_app_share(session=session, app_id=app.id, share_id=share.id)
    assert loaded is not None
    return loaded


async def delete_share(*, session: AsyncSession, principal: Principal, app: App, share_id: uuid.UUID) -> None:
    """Remove a share; the organization loses the app unless it may still install it otherwise."""
    await installations.lock_app(session=session, app_id=app.id)
    share = await session.get(AppShare, share_id)
    if share is None or share.app_id != app.id:
        raise NotFound("No app share found with the given ID.")
    await session.delete(share)
    await session.flush()
    await cascade.uninstall_ineligible(
        session=session,
        app_ids=[app.id],
        organization_ids=[share.organization_id],
        actor_user_id=principal.user_id,
    )
