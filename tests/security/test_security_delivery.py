"""Issue 13, item 1: a URL the sender cannot parse never wedges a delivery or crashes a pump.

Write time: an `endpoint_url` or `trigger_url` that httpx refuses is a 400 naming the field.
Send time (for rows written before that check, or by hand): every exception inside an attempt is
a failed attempt with a reason, the delivery ends `failed` within its schedule, and the other
attempts (same endpoint or another) are delivered. A lapsed lease counts against `max_attempts`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.attempts import INTERRUPTED_LAST
from apps_api.delivery.outbox import build_delivery
from apps_api.installations.service import uninstall
from apps_api.models import App, AppInstallation, OutboundDelivery, Webhook
from apps_api.models.base import utcnow
from tests.fixtures.apps import app_payload, owned_url
from tests.fixtures.delivery import World, chat_event, sub
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.webhooks import receivers, worker

POISON = "http://0177.0.0.1:9912/poison"  # urlsplit accepts it; httpx: "Invalid IPv4 address"


async def test_unsendable_urls_are_refused_at_write_time(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    hooks = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    for url in (POISON, "http://1.2.3.999/x", "http://example.com:0/x"):
        response = await client.post(
            hooks, json={"endpoint_url": url, "channel_subscriptions": []}, headers=tenant.headers
        )
        assert response.status_code == 400, url
        assert list(response.json()["errors"]) == ["endpoint_url"]
    created = await client.post(
        hooks,
        json={"endpoint_url": "https://hooks.example.com/x", "channel_subscriptions": []},
        headers=tenant.headers,
    )
    assert created.status_code == 201
    patched = await client.patch(
        f"{hooks}/{created.json()['id']}", json={"endpoint_url": POISON}, headers=tenant.headers
    )
    assert patched.status_code == 400 and list(patched.json()["errors"]) == ["endpoint_url"]

    refused = await client.post(
        owned_url(tenant), json=app_payload(trigger_url=POISON), headers=tenant.headers
    )
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["trigger_url"]
    refused = await client.patch(
        owned_url(tenant, app.id), json={"trigger_url": POISON}, headers=tenant.headers
    )
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["trigger_url"]


@pytest.mark.subprocess
@pytest.mark.slow
async def test_poison_urls_in_the_database_fail_within_their_schedule(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    with receivers(None) as (receiver,):
        app = await world.app(
            provider, trigger_conditions=["uninstall"], trigger_url=receiver.url + "/trigger"
        )
        good = await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        # Same endpoint (scheme://host:port) as the good one, and another endpoint: both poisoned
        # behind the API's back, as rows written before the write-time check would be.
        chats = sub("/api/v5/orgs/{organization_id}/chats")
        same_endpoint = await world.webhook(provider, app, receiver.url, chats)
        other_endpoint = await world.webhook(provider, app, receiver.url, chats)
        installation = await world.install(org, app)

        async def poison(session: AsyncSession) -> None:
            bad_same = receiver.url + "/\x7f"  # a non-printable character: httpx refuses the URL
            for webhook_id, url in ((same_endpoint, bad_same), (other_endpoint, POISON)):
                await session.execute(
                    update(Webhook).where(Webhook.id == webhook_id).values(endpoint_url=url)
                )
            await session.execute(update(App).where(App.id == app.id).values(trigger_url=POISON))

        await world.run(poison)
        with worker() as process:
            await world.publish(*(chat_event(org.org_id, resource_id=f"chat-{i}") for i in range(3)))
            # Installations are read at dispatch: settle before uninstalling.
            await world.settle()

            async def uninstall_it(session: AsyncSession) -> None:
                current = await session.get(AppInstallation, installation.id)
                assert current is not None
                await uninstall(session=session, installation=current, actor_user_id=org.user.id)

            await world.run(uninstall_it)
            await world.settle()
            output = process.output()

    # The good webhook got every event, although poisoned attempts to its endpoint ran beside it.
    good_chats = sorted(
        r.headers["webhook-id"] for r in receiver.requests if r.path == "/hook" and b"/chats" in r.body
    )
    assert len(good_chats) == 3
    deliveries = await world.deliveries(app.id)
    by_webhook: dict[uuid.UUID | None, list[OutboundDelivery]] = {}
    for delivery in deliveries:
        by_webhook.setdefault(delivery.webhook_id, []).append(delivery)
    assert {d.status for d in by_webhook[good] if "/chats" in d.channel} == {"successful"}
    poisoned = [*by_webhook[same_endpoint], *by_webhook[other_endpoint], *by_webhook[None]]
    assert len([d for d in poisoned if d.kind == "trigger"]) == 1
    assert len(poisoned) >= 7
    for delivery in poisoned:
        # Failed after exactly its schedule's attempts (the worker's 3 retries: 4 attempts; the
        # trigger was scheduled by this process, with the default schedule).
        assert (delivery.status, delivery.attempt_count) == ("failed", delivery.max_attempts)
        assert delivery.max_attempts == (4 if delivery.kind == "webhook" else 8)
    entries = [e for e in await world.log(app.id) if e.delivery_id in {d.id for d in poisoned}]
    assert len(entries) == sum(d.max_attempts for d in poisoned)
    assert {e.status for e in entries} == {"failed"}
    assert all(e.reason and e.reason.startswith("Invalid URL:") for e in entries), {e.reason for e in entries}
    assert "Traceback" not in output and "deliver_outbound failed" not in output


@pytest.mark.subprocess
async def test_a_lapsed_last_attempt_counts_and_the_delivery_fails(world: World) -> None:
    provider = await world.tenant("Provider")
    app = await world.app(provider)
    with receivers(None) as (receiver,):
        past = utcnow() - timedelta(minutes=5)

        async def abandoned(session: AsyncSession) -> uuid.UUID:
            delivery, entry = build_delivery(
                kind="trigger",
                app_id=app.id,
                organization_id=provider.org_id,
                method="GET",
                endpoint_url=receiver.url,
                channel=f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/installations",
                action="removed",
                resource_id="r1",
                payload={"type": "uninstall", "claims": {"organization_id": str(provider.org_id)}},
                signing_secret=app.secret,
                max_attempts=2,
            )
            # The worker that leased its last attempt died: the lease lapsed long ago.
            delivery.status, delivery.attempt_count = "started", 2
            delivery.locked_until, delivery.locked_by = past, "dead-worker"
            entry.status = "started"
            session.add(delivery)
            await session.flush()
            session.add(entry)
            await session.flush()
            return delivery.id

        delivery_id = await world.run(abandoned)
        with worker():
            await world.settle()
    assert receiver.requests == []  # never sent a third time
    (delivery,) = await world.deliveries(app.id)
    assert delivery.id == delivery_id and (delivery.status, delivery.attempt_count) == ("failed", 2)
    (entry,) = await world.log(app.id)
    assert (entry.status, entry.reason) == ("failed", INTERRUPTED_LAST)


async def test_endpoint_host_of_an_unsplittable_url_does_not_raise() -> None:
    from apps_api.delivery.outbox import endpoint_host

    assert endpoint_host("http://[::1/x").startswith("invalid://")
    assert endpoint_host("https://Example.com/x") == "https://example.com:443"
