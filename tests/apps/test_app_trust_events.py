"""An app hears only what its installation allows, as the installations were when the event was written.

Issue 12, points 2 and 6: the service's own channels carry their scope (`settings` for
installations and installed apps, `users` for users), and matching uses the installations as the
event's writer saw them. The changes are committed before the worker starts, so the dispatcher
only runs once everything (installs, uninstalls) has happened: what it delivers depends on the
events' snapshots, not on how fast it was.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps_api.delivery.maintenance import purge
from apps_api.installations.service import uninstall
from apps_api.models import AppInstallation, AppInstallationRemoval, Event
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub, verified
from tests.fixtures.webhooks import receivers, worker


async def uninstall_it(in_world: World, installation_id: uuid.UUID, actor_user_id: uuid.UUID) -> None:
    async def run(session: AsyncSession) -> None:
        current = await session.get(AppInstallation, installation_id)
        assert current is not None
        await uninstall(session=session, installation=current, actor_user_id=actor_user_id)

    await in_world.run(run)


@pytest.mark.subprocess
async def test_an_app_without_settings_does_not_hear_other_installations(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    deaf = await world.app(provider, name="No scopes")
    listening = await world.app(provider, name="Settings")
    other = await world.app(provider, name="Other")
    pattern = "/api/v5/orgs/{organization_id}/app_installations"
    with receivers(None, None) as (deaf_receiver, listening_receiver):
        await world.webhook(provider, deaf, deaf_receiver.url, sub(pattern))
        await world.webhook(provider, listening, listening_receiver.url, sub(pattern))
        await world.install(org, deaf, scopes=[])
        await world.install(org, listening, scopes=["settings"])
        other_installation = await world.install(org, other, scopes=[])
        with worker():
            await world.settle()

    assert deaf_receiver.requests == []
    bodies = verified(listening_receiver, listening.secret)
    # Its own installation and the later one; not the one committed before it was installed.
    assert sorted((b["action"], b["resource"]["app_id"]) for b in bodies) == sorted(
        [("added", str(listening.id)), ("added", str(other.id))]
    )
    assert next(b for b in bodies if b["resource"]["app_id"] == str(other.id))["resource_id"] == str(
        other_installation.id
    )


@pytest.mark.subprocess
async def test_a_removal_reaches_the_uninstalling_organization(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(
        provider,
        is_app_user_required=True,
        app_user_default_first_name="Bot",
        app_user_default_last_name="User",
    )
    with receivers(None) as (receiver,):
        await world.webhook(
            provider,
            app,
            receiver.url,
            sub("/api/v5/orgs/{organization_id}/app_installations", added=False),
            sub("/api/v5/orgs/{organization_id}/installed_apps", added=False),
            sub("/api/v5/orgs/{organization_id}/users", added=False),
        )
        installation = await world.install(org, app, scopes=["settings", "users"])
        await uninstall_it(world, installation.id, org.user.id)
        with worker():
            await world.settle()

    bodies = verified(receiver, app.secret)
    assert sorted((b["channel"], b["action"], b["resource_id"]) for b in bodies) == sorted(
        [
            (f"/api/v5/orgs/{org.org_id}/app_installations", "removed", str(installation.id)),
            (f"/api/v5/orgs/{org.org_id}/installed_apps", "removed", str(app.id)),
            (f"/api/v5/orgs/{org.org_id}/users", "removed", str(installation.app_user_id)),
        ]
    )


@pytest.mark.subprocess
async def test_a_removal_needs_the_scope_of_its_channel(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(
        provider,
        is_app_user_required=True,
        app_user_default_first_name="Bot",
        app_user_default_last_name="User",
    )
    with receivers(None) as (receiver,):
        await world.webhook(
            provider,
            app,
            receiver.url,
            sub("/api/v5/orgs/{organization_id}/app_installations"),
            sub("/api/v5/orgs/{organization_id}/users"),
        )
        installation = await world.install(org, app, scopes=["users"])
        await uninstall_it(world, installation.id, org.user.id)
        with worker():
            await world.settle()

    # `users` only: the app user's own added and removed, never the installation's.
    bodies = verified(receiver, app.secret)
    assert sorted((b["channel"], b["action"]) for b in bodies) == sorted(
        [(f"/api/v5/orgs/{org.org_id}/users", "added"), (f"/api/v5/orgs/{org.org_id}/users", "removed")]
    )


@pytest.mark.subprocess
async def test_an_event_written_before_an_install_never_reaches_it(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with receivers(None) as (receiver,):
        await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.publish(chat_event(org.org_id, resource_id="before"))
        await world.install(org, app, scopes=["reports"])
        await world.publish(chat_event(org.org_id, resource_id="after"))
        with worker():
            await world.settle()

    assert [b["resource_id"] for b in verified(receiver, app.secret)] == ["after"]


async def test_removals_are_kept_by_the_database_and_purged_when_no_event_needs_them(
    world: World,
    settings: Settings,
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    old_app, new_app = await world.app(provider, name="Old"), await world.app(provider, name="New")
    old = await world.install(org, old_app, scopes=["settings", "reports"])
    new = await world.install(org, new_app, scopes=[])
    await uninstall_it(world, old.id, org.user.id)
    await uninstall_it(world, new.id, org.user.id)

    async def removals() -> dict[uuid.UUID, AppInstallationRemoval]:
        async with AsyncSession(world.engine) as session:
            rows = await session.scalars(
                select(AppInstallationRemoval).where(AppInstallationRemoval.organization_id == org.org_id)
            )
            return {row.id: row for row in rows}

    kept = await removals()
    assert set(kept) == {old.id, new.id}
    assert (kept[old.id].app_id, kept[old.id].app_owner_id) == (old_app.id, provider.org_id)
    assert kept[old.id].allowed_scopes == ["reports", "settings"]
    assert kept[old.id].installed_xact_id is not None
    assert kept[old.id].removed_xact_id > kept[old.id].installed_xact_id

    # Past the retention, a removal goes once no undispatched event was written before it.
    async with AsyncSession(world.engine) as session, session.begin():
        await session.execute(
            update(AppInstallationRemoval)
            .where(AppInstallationRemoval.id == old.id)
            .values(removed_at=utcnow() - timedelta(days=settings.webhook_log_retention_days + 1))
        )
        await session.execute(
            update(Event).where(Event.organization_id == org.org_id).values(dispatched_at=utcnow())
        )
    sessionmaker = async_sessionmaker(world.engine, expire_on_commit=False)
    await purge(settings=settings, sessionmaker=sessionmaker)
    assert set(await removals()) == {new.id}
