"""Narrowing who may install an app uninstalls it from exactly the organizations that lost it."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.installations import cascade as installations
from apps_api.models import App, AppInstallation, OutboundDelivery, User
from tests.fixtures.apps import (
    actual_installations,
    events,
    install_via_api,
    installation_count,
    installed_org_ids,
    owned_url,
    partner_app,
    partners,
    share,
)
from tests.fixtures.factories import Tenant, make_app, make_tenant


async def _org(session: AsyncSession, name: str) -> Tenant:
    return await make_tenant(session, name=name, features=["apps", "app_provider"])


async def test_publicity_to_false_uninstalls_from_those_who_lost_it(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    shared_partner = await _org(session, "Shared partner")
    partner = await _org(session, "Partner")
    stranger = await _org(session, "Stranger")
    await partners(session, tenant, shared_partner)
    await partners(session, tenant, partner)
    app = await make_app(
        session,
        tenant.organization,
        is_available_to_anyone=True,
        is_approved=True,
        is_available_to_partners=True,
        is_app_user_required=True,
        app_user_default_first_name="Bot",
        app_user_default_last_name="User",
        trigger_url="https://trigger.example.com/hook",
        trigger_conditions=["uninstall"],
    )
    await share(session, app, shared_partner)
    for org in (tenant, shared_partner, partner, stranger):
        await install_via_api(client, org, app.id)
    stranger_installation = await install_row(session, app.id, stranger.org_id)
    assert await installation_count(session, app.id) == 4

    response = await client.patch(
        owned_url(tenant, app.id), json={"is_available_to_anyone": False}, headers=tenant.headers
    )

    assert response.status_code == 200
    assert response.json()["installation_count"] == 3
    assert await installed_org_ids(session, app.id) == {tenant.org_id, shared_partner.org_id, partner.org_id}
    removed = await events(session, organization_id=stranger.org_id, action="removed")
    assert {event.channel for event in removed} == {
        f"/api/v5/orgs/{stranger.org_id}/app_installations",
        f"/api/v5/orgs/{stranger.org_id}/installed_apps",
        f"/api/v5/orgs/{stranger.org_id}/users",
    }
    assert all(event.actor_user_id == tenant.user.id for event in removed)
    app_user = await session.get(User, stranger_installation.app_user_id, populate_existing=True)
    assert app_user is not None and app_user.deleted_at is not None
    # This app's: other tests' committed triggers are visible in this transaction too.
    mine = (OutboundDelivery.kind == "trigger", OutboundDelivery.app_id == app.id)
    triggers = (await session.scalars(select(OutboundDelivery).where(*mine))).all()
    assert [trigger.installation_id for trigger in triggers] == [stranger_installation.id]

    response = await client.patch(
        owned_url(tenant, app.id), json={"is_available_to_partners": False}, headers=tenant.headers
    )
    assert response.json()["installation_count"] == 2
    # The share keeps the app for the partner it was shared with; the owner always keeps it.
    assert await installed_org_ids(session, app.id) == {tenant.org_id, shared_partner.org_id}
    assert await actual_installations(session, app.id) == 2


async def test_other_changes_uninstall_nothing(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    await partners(session, tenant, other_tenant)
    app = await partner_app(session, tenant)
    await install_via_api(client, other_tenant, app.id)

    for body in ({"name": "Renamed"}, {"is_available_to_anyone": True}, {"is_available_to_partners": True}):
        assert (
            await client.patch(owned_url(tenant, app.id), json=body, headers=tenant.headers)
        ).status_code == 200
    assert await installed_org_ids(session, app.id) == {other_tenant.org_id}


async def test_removing_a_share_uninstalls_only_where_nothing_else_allows_it(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    loses = await _org(session, "Loses it")
    keeps = await _org(session, "Keeps its own share")
    for org in (loses, keeps):
        await partners(session, tenant, org)
    shared_only = await make_app(session, tenant.organization, name="Shared only")
    public = await make_app(
        session, tenant.organization, name="Public", is_available_to_anyone=True, is_approved=True
    )
    loses_share = await share(session, shared_only, loses)
    await share(session, shared_only, keeps)
    public_share = await share(session, public, loses)
    for org in (loses, keeps):
        await install_via_api(client, org, shared_only.id)
    await install_via_api(client, loses, public.id)

    deleted = await client.delete(
        owned_url(tenant, shared_only.id, f"/shares/{loses_share.id}"), headers=tenant.headers
    )
    assert deleted.status_code == 204
    assert await installed_org_ids(session, shared_only.id) == {keeps.org_id}
    assert await installation_count(session, shared_only.id) == 1

    # Public anyway: unsharing takes nothing away.
    deleted = await client.delete(
        owned_url(tenant, public.id, f"/shares/{public_share.id}"), headers=tenant.headers
    )
    assert deleted.status_code == 204
    assert await installed_org_ids(session, public.id) == {loses.org_id}


async def test_ending_a_partnership_uninstalls_both_ways_and_nothing_else(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    third = await _org(session, "Third")
    await partners(session, tenant, other_tenant)
    await partners(session, tenant, third)
    offered = await partner_app(session, tenant, name="Offered")
    shared = await make_app(session, tenant.organization, name="Shared")
    await share(session, shared, other_tenant)
    public = await partner_app(session, tenant, name="Public", is_available_to_anyone=True, is_approved=True)
    theirs = await partner_app(session, other_tenant, name="Theirs")
    for app in (offered, shared, public):
        await install_via_api(client, other_tenant, app.id)
    await install_via_api(client, third, offered.id)
    await install_via_api(client, tenant, theirs.id)

    removed, uninstalled = await installations.end_partnership(
        session=session, a=other_tenant.org_id, b=tenant.org_id
    )
    await session.flush()

    assert removed is True and len(uninstalled) == 3
    assert await installed_org_ids(session, offered.id) == {third.org_id}
    assert await installed_org_ids(session, shared.id) == set()
    assert await installed_org_ids(session, public.id) == {other_tenant.org_id}
    assert await installed_org_ids(session, theirs.id) == set()
    for app in (offered, shared, public, theirs):
        assert await installation_count(session, app.id) == await actual_installations(session, app.id)
    # Shares do not outlive the partnership.
    listed = await client.get(owned_url(tenant, shared.id, "/shares"), headers=tenant.headers)
    assert listed.json()["results"] == []
    again = await installations.end_partnership(session=session, a=tenant.org_id, b=other_tenant.org_id)
    assert again == (False, [])


async def test_deleting_the_app_uninstalls_it_everywhere(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await make_app(
        session,
        tenant.organization,
        is_available_to_anyone=True,
        is_approved=True,
        trigger_url="https://trigger.example.com/hook",
        trigger_conditions=["uninstall"],
    )
    untouched = await make_app(session, tenant.organization, is_available_to_anyone=True, is_approved=True)
    for org in (tenant, other_tenant):
        await install_via_api(client, org, app.id)
    await install_via_api(client, other_tenant, untouched.id)
    app_id = app.id

    response = await client.delete(owned_url(tenant, app_id), headers=tenant.headers)

    assert response.status_code == 204
    assert await session.scalar(select(App.id).where(App.id == app_id)) is None
    assert await installed_org_ids(session, untouched.id) == {other_tenant.org_id}
    for org in (tenant, other_tenant):
        removed = await events(
            session, channel=f"/api/v5/orgs/{org.org_id}/app_installations", action="removed"
        )
        assert len(removed) == 1 and removed[0].resource["app_id"] == str(app_id)
    owner_removed = await events(
        session, channel=f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app_id}/installations", action="removed"
    )
    assert {event.resource["organization_id"] for event in owner_removed} == {
        str(tenant.org_id),
        str(other_tenant.org_id),
    }
    # The uninstall triggers outlive the app.
    triggers = (
        await session.scalars(
            select(OutboundDelivery).where(
                OutboundDelivery.kind == "trigger", OutboundDelivery.app_id == app_id
            )
        )
    ).all()
    assert {trigger.target_organization_id for trigger in triggers} == {tenant.org_id, other_tenant.org_id}


async def install_row(
    session: AsyncSession, app_id: uuid.UUID, organization_id: uuid.UUID
) -> AppInstallation:
    row = await session.scalar(
        select(AppInstallation).where(
            AppInstallation.app_id == app_id, AppInstallation.organization_id == organization_id
        )
    )
    assert row is not None
    return row
