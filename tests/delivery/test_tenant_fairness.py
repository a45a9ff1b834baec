"""Issue 24: amplification and starvation between tenants.

At most 100 apps per organization; one delivery per (app, endpoint URL) per event; the
concurrency toward one origin bounded per app below a global bound (the worker tests are in
tests/webhooks/test_endpoint_care.py and tests/delivery/test_webhooks_units.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.apps import service as apps_service
from apps_api.apps.schemas import OwnedAppInput
from apps_api.auth.service import Principal
from apps_api.kit.errors import Conflict
from apps_api.kit.security import new_app_secret
from apps_api.models import App, Event, Organization
from tests.fixtures.apps import app_payload, owned_url
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.delivery import World, chat_event, sub, webhook_url
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.installflow import make_installer
from tests.fixtures.webhooks import Reply, eventually, receivers, worker

CHATS = "/api/v5/orgs/{organization_id}/chats"


async def _own_apps(session: AsyncSession, tenant: Tenant, count: int) -> None:
    """`count` apps of the tenant in one INSERT (what the API would have created)."""
    rows: list[dict[str, Any]] = [
        {
            "owned_by_organization_id": tenant.org_id,
            "name": f"App {n}",
            "description": "Bulk",
            "terms_of_service_url": "https://example.com/tos",
            "privacy_policy_url": "https://example.com/privacy",
            "secret": new_app_secret(),
        }
        for n in range(count)
    ]
    await session.execute(insert(App), rows)
    await session.flush()


async def test_an_organization_owns_at_most_100_apps(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert apps_service.MAX_APPS_PER_ORGANIZATION == 100
    await _own_apps(session, tenant, 99)
    last = await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)
    assert last.status_code == 201, last.text

    refused = await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)

    assert refused.status_code == 409, refused.text
    assert "at most 100 apps" in refused.json()["detail"]
    owned = select(func.count()).select_from(App).where(App.owned_by_organization_id == tenant.org_id)
    assert await session.scalar(owned) == 100
    # Per owner: another organization is not affected; deleting one makes room again.
    assert (
        await client.post(owned_url(other_tenant), json=app_payload(), headers=other_tenant.headers)
    ).status_code == 201
    deleted = await client.delete(owned_url(tenant, last.json()["id"]), headers=tenant.headers)
    assert deleted.status_code == 204
    assert (
        await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)
    ).status_code == 201


async def test_invalid_input_is_still_400_at_the_limit(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    await _own_apps(session, tenant, 100)
    response = await client.post(owned_url(tenant), json={"name": ""}, headers=tenant.headers)
    assert response.status_code == 400


async def test_the_console_shows_the_limit_on_its_form(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_installer(session, name="Console owner", features=["apps", "app_provider"])
    await _own_apps(session, provider, 100)
    await sign_in(client, provider.user.email)
    token = await csrf(client, "/console/apps/new")
    form = {
        "csrf_token": token,
        "name": "One too many",
        "description": "Refused.",
        "terms_of_service_url": "https://example.com/tos",
        "privacy_policy_url": "https://example.com/privacy",
    }
    refused = await client.post("/console/apps", data=form)
    assert refused.status_code == 409
    assert "at most 100 apps" in refused.text and 'value="One too many"' in refused.text


async def test_concurrent_creations_never_pass_the_limit(engine: AsyncEngine) -> None:
    """Two real transactions on two connections, committed, at 99 apps: exactly one is created."""
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        owner = await make_tenant(setup, name="Limit owner", features=["apps", "app_provider"])
        await _own_apps(setup, owner, apps_service.MAX_APPS_PER_ORGANIZATION - 1)
        await setup.commit()
    try:

        async def attempt() -> str:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                organization = await session.get(Organization, owner.org_id)
                assert organization is not None
                user = await session.merge(owner.user)
                principal = Principal(user=user, organization=organization)
                data = OwnedAppInput.model_validate(app_payload())
                try:
                    await apps_service.create_app(db=session, principal=principal, data=data)
                    # Both counts are taken before either commits, unless the lock orders them.
                    await asyncio.sleep(0.2)
                    await session.commit()
                    return "created"
                except Conflict:
                    await session.rollback()
                    return "conflict"

        outcomes = await asyncio.gather(attempt(), attempt())

        assert sorted(outcomes) == ["conflict", "created"]
        async with AsyncSession(engine) as check:
            owned = select(func.count()).select_from(App).where(App.owned_by_organization_id == owner.org_id)
            assert await check.scalar(owned) == apps_service.MAX_APPS_PER_ORGANIZATION
    finally:
        async with AsyncSession(engine) as cleanup:
            await cleanup.execute(delete(Event).where(Event.organization_id == owner.org_id))
            await cleanup.execute(delete(App).where(App.owned_by_organization_id == owner.org_id))
            await cleanup.execute(delete(Organization).where(Organization.id == owner.org_id))
            await cleanup.commit()


@pytest.mark.subprocess
async def test_one_event_reaches_one_url_once_per_app(world: World) -> None:
    """20 webhooks of one app naming one URL: one request; a second app's webhooks there: one more."""
    provider, other_provider, org = (
        await world.tenant("Provider"),
        await world.tenant("Other provider"),
        await world.tenant("Org"),
    )
    app, other_app = await world.app(provider), await world.app(other_provider)
    with receivers(None) as (receiver,), worker():
        webhooks = [await world.webhook(provider, app, receiver.url, sub(CHATS)) for _ in range(20)]
        await world.install(org, app)

        await world.publish(chat_event(org.org_id, resource_id="one"))
        await world.settle()

        assert len(receiver.requests) == 1
        (delivery,) = await world.deliveries(app.id)
        assert delivery.webhook_id == min(webhooks) and delivery.status == "successful"

        for _ in range(2):
            await world.webhook(other_provider, other_app, receiver.url, sub(CHATS))
        await world.install(org, other_app)
        await world.publish(chat_event(org.org_id, resource_id="two"))
        await world.settle()

    second = receiver.requests[1:]
    assert len(second) == 2
    assert len({request.headers["webhook-id"] for request in second}) == 2
    assert [d.resource_id for d in await world.deliveries(other_app.id)] == ["two"]


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_flooding_app_delays_another_apps_test_event_by_seconds_at_most(
    world: World, api: httpx.AsyncClient
) -> None:
    """60 deliveries of one app to a receiver that holds every request until the check is done;
    another app's test event to the same host and port arrives within 5 s (in strict time order
    over one bound of 10 it would wait for the flood's slots, which never free)."""
    flooder, other, org = (
        await world.tenant("Flooder"),
        await world.tenant("Other"),
        await world.tenant("Org"),
    )
    flooding_app, other_app = await world.app(flooder), await world.app(other)
    with receivers(lambda _: Reply(hang=True)) as (receiver,), worker():
        await world.webhook(flooder, flooding_app, receiver.url, sub(CHATS))
        other_webhook = await world.webhook(other, other_app, receiver.url + "/other", sub(CHATS))
        await world.install(org, flooding_app)
        await world.publish(*(chat_event(org.org_id, resource_id=f"flood-{n}") for n in range(60)))
        await eventually(lambda: receiver.in_flight >= 10, what="the flood in flight")

        started = time.monotonic()
        sent = await api.post(webhook_url(other, other_app.id, other_webhook, "/test"), headers=other.headers)
        assert sent.status_code == 202, sent.text

        def tested() -> bool:
            return any(json.loads(request.body)["action"] == "test" for request in list(receiver.requests))

        await eventually(tested, timeout=30, what="the other app's test event")
        waited = time.monotonic() - started
        assert waited < 5, f"the test event waited {waited:.1f} s behind another app's flood"
        # The flooding app never had more than its own bound in flight.
        assert receiver.max_in_flight <= 11
        receiver.release.set()
        await world.settle()
    assert len(receiver.requests) == 61
