"""Deliveries follow their webhook (issue 24, finding A): every attempt goes to the webhook's URL
as it is when the attempt starts, and nothing more goes out once the webhook is disabled or
deleted. Moving off a compromised host stops the app user's bearer tokens flowing to it.

Real worker processes deliver to real receivers on 127.0.0.1; the API runs in process on the
committed database. Waits poll; the only sleeps wait out a retry that must never come.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.health import DELETED_DELIVERY_REASON, DISABLED_DELIVERY_REASON
from apps_api.delivery.send import REDACTED
from apps_api.models import App, OutboundDelivery
from apps_api.models.base import utcnow
from tests.fixtures.delivery import (
    CHATS,
    World,
    chat_event,
    deliveries_of,
    entries_of,
    sub,
    verified,
    webhook_url,
)
from tests.fixtures.factories import Tenant
from tests.fixtures.webhooks import Receiver, Reply, eventually, receivers, worker

pytestmark = pytest.mark.subprocess

# One retry two seconds after the first attempt: time to change the webhook in between (the
# change follows the failure by a poll of 0.1 s and one in-process request).
RETRY_LATER = {"APPS_API_WEBHOOK_RETRY_SCHEDULE": "2,2"}
# Waiting out that retry (and a sweep after it, every second): it must not reach the old receiver.
PAST_THE_RETRY = 3.5


def log_url(owner: Tenant, app_id: uuid.UUID, tail: str = "") -> str:
    return f"/api/v5/orgs/{owner.org_id}/owned_apps/{app_id}/webhook_log_entries{tail}"


async def bot(world: World, owner: Tenant) -> App:
    """An app with an app user, so every delivery carries a freshly minted `app_user_auth`."""
    return await world.app(
        owner, is_app_user_required=True, app_user_default_first_name="Bot", app_user_default_last_name="A"
    )


async def failed_once(engine: AsyncEngine, webhook_id: uuid.UUID) -> bool:
    """The webhook's delivery has failed its first attempt and waits for its retry."""
    deliveries = await deliveries_of(engine, webhook_id)
    return [(d.status, d.attempt_count) for d in deliveries] == [("pending", 1)]


async def patch(
    api: httpx.AsyncClient, owner: Tenant, app: App, webhook_id: uuid.UUID, **changes: Any
) -> None:
    response = await api.patch(webhook_url(owner, app.id, webhook_id), json=changes, headers=owner.headers)
    assert response.status_code == 200, response.text


async def test_retries_after_a_url_change_go_to_the_new_receiver_and_never_the_old(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    with receivers(lambda n: Reply(500), None) as (old, new), worker(**RETRY_LATER):
        webhook_id = await world.webhook(provider, app, old.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await eventually(lambda: failed_once(engine, webhook_id), what="the first attempt failed")

        await patch(api, provider, app, webhook_id, endpoint_url=new.url)

        # The waiting retry moved with the change: its pending entry already names the new URL.
        listed = await api.get(
            log_url(provider, app.id), params={"status": "pending"}, headers=provider.headers
        )
        assert [entry["endpoint_url"] for entry in listed.json()["results"]] == [new.url]
        await world.settle()

    assert len(old.requests) == 1 and len(new.requests) == 1
    (first,), (retry,) = verified(old, app.secret), verified(new, app.secret)
    assert retry["app_user_auth"]["access_token"] and retry["resource_id"] == first["resource_id"]
    assert new.requests[0].headers["webhook-id"] == old.requests[0].headers["webhook-id"]
    entries = await entries_of(engine, webhook_id)
    assert [(e.endpoint_url, e.status) for e in entries] == [(old.url, "failed"), (new.url, "successful")]


async def test_an_attempt_in_flight_during_the_change_retries_to_the_new_url(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Its retry comes back pending with the old URL: the lease refuses it, the sweeper moves it."""
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    with receivers(lambda n: Reply(500, hang=True), None) as (old, new), worker(**RETRY_LATER):
        webhook_id = await world.webhook(provider, app, old.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await eventually(lambda: old.in_flight == 1, what="the first attempt in flight")

        await patch(api, provider, app, webhook_id, endpoint_url=new.url)
        old.release.set()

        await eventually(lambda: len(new.requests) == 1, what="the retry at the new URL")
        await world.settle()

    assert len(old.requests) == 1 and len(new.requests) == 1
    assert verified(new, app.secret)[0]["app_user_auth"]["access_token"]
    entries = await entries_of(engine, webhook_id)
    assert [(e.endpoint_url, e.status) for e in entries] == [(old.url, "failed"), (new.url, "successful")]


async def test_redeliver_after_a_url_change_goes_to_the_new_url(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    with receivers(lambda n: Reply(410), None) as (old, new), worker():
        webhook_id = await world.webhook(provider, app, old.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()
        (gone,) = await entries_of(engine, webhook_id)
        assert (gone.status, gone.endpoint_url) == ("failed", old.url)
        await patch(api, provider, app, webhook_id, endpoint_url=new.url)

        redelivered = await api.post(
            log_url(provider, app.id, f"/{gone.id}/redeliver"), headers=provider.headers
        )

        assert redelivered.status_code == 202, redelivered.text
        assert redelivered.json()["endpoint_url"] == new.url
        await world.settle()

    assert len(old.requests) == 1 and len(new.requests) == 1
    assert verified(new, app.secret)[0]["app_user_auth"]["access_token"]
    shown = await api.get(log_url(provider, app.id, f"/{redelivered.json()['id']}"), headers=provider.headers)
    assert (shown.json()["endpoint_url"], shown.json()["status"]) == (new.url, "successful")


async def test_recover_after_a_url_change_goes_to_the_new_url(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    since = utcnow()
    with receivers(lambda n: Reply(410), None) as (old, new), worker():
        webhook_id = await world.webhook(provider, app, old.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()
        await patch(api, provider, app, webhook_id, endpoint_url=new.url)

        recovered = await api.post(
            webhook_url(provider, app.id, webhook_id, "/recover"),
            json={"since": since.isoformat()},
            headers=provider.headers,
        )

        assert recovered.status_code == 202 and recovered.json() == {"requeued": 1}, recovered.text
        await world.settle()

    assert len(old.requests) == 1 and len(new.requests) == 1
    entries = await entries_of(engine, webhook_id)
    assert [(e.endpoint_url, e.status) for e in entries] == [(old.url, "failed"), (new.url, "successful")]


@pytest.mark.slow
async def test_disabling_ends_a_pending_retry_at_once_and_sends_nothing_more(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    with receivers(lambda n: Reply(500)) as (old,), worker(**RETRY_LATER):
        webhook_id = await world.webhook(provider, app, old.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await eventually(lambda: failed_once(engine, webhook_id), what="the first attempt failed")

        await patch(api, provider, app, webhook_id, is_disabled=True)

        # In the change's own transaction, not at the sweeper's next run.
        listed = await api.get(
            log_url(provider, app.id), params={"webhook_id": str(webhook_id)}, headers=provider.headers
        )
        assert [(e["status"], e["reason"]) for e in listed.json()["results"]] == [
            ("failed", DISABLED_DELIVERY_REASON),
            ("failed", "Non-2xx response: 500."),
        ]
        assert [d.status for d in await deliveries_of(engine, webhook_id)] == ["failed"]
        await asyncio.sleep(PAST_THE_RETRY)
    assert len(old.requests) == 1


async def _pending_retry_then_delete(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine, old: Receiver, *, in_flight: bool
) -> tuple[Tenant, App, uuid.UUID]:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    webhook_id = await world.webhook(provider, app, old.url, sub(CHATS))
    await world.install(org, app)
    await world.publish(chat_event(org.org_id))
    if in_flight:
        await eventually(lambda: old.in_flight == 1, what="the first attempt in flight")
    else:
        await eventually(lambda: failed_once(engine, webhook_id), what="the first attempt failed")
    deleted = await api.delete(webhook_url(provider, app.id, webhook_id), headers=provider.headers)
    assert deleted.status_code == 204, deleted.text
    return provider, app, webhook_id


async def _delivery_of(engine: AsyncEngine, app: App) -> OutboundDelivery:
    async with AsyncSession(engine) as session:
        return (
            await session.execute(select(OutboundDelivery).where(OutboundDelivery.app_id == app.id))
        ).scalar_one()


@pytest.mark.slow
async def test_deleting_ends_a_pending_retry_sends_nothing_more_and_keeps_the_log(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    with receivers(lambda n: Reply(500)) as (old,), worker(**RETRY_LATER):
        provider, app, webhook_id = await _pending_retry_then_delete(world, api, engine, old, in_flight=False)

        # The log stays readable after the webhook is gone; the waiting attempt ended with the reason.
        listed = await api.get(log_url(provider, app.id), headers=provider.headers)
        assert [(e["status"], e["reason"], e["webhook_id"]) for e in listed.json()["results"]] == [
            ("failed", DELETED_DELIVERY_REASON, str(webhook_id)),
            ("failed", "Non-2xx response: 500.", str(webhook_id)),
        ]
        delivery = await _delivery_of(engine, app)
        assert (delivery.status, delivery.webhook_id) == ("failed", webhook_id)
        # Nothing to redeliver to.
        retry_id = listed.json()["results"][0]["id"]
        refused = await api.post(
            log_url(provider, app.id, f"/{retry_id}/redeliver"), headers=provider.headers
        )
        assert refused.status_code == 409, refused.text
        await asyncio.sleep(PAST_THE_RETRY)
    assert len(old.requests) == 1


@pytest.mark.slow
async def test_an_attempt_in_flight_when_its_webhook_is_deleted_is_recorded_and_not_retried(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    with receivers(lambda n: Reply(500, hang=True)) as (old,), worker(**RETRY_LATER) as process:
        _, app, webhook_id = await _pending_retry_then_delete(world, api, engine, old, in_flight=True)
        old.release.set()

        async def ended() -> bool:
            return (await _delivery_of(engine, app)).status == "failed"

        await eventually(ended, what="the delivery ended")
        await asyncio.sleep(PAST_THE_RETRY)
        output = process.output()
    assert len(old.requests) == 1
    entries = await entries_of(engine, webhook_id)
    assert [(e.status, e.reason) for e in entries] == [
        ("failed", "Non-2xx response: 500."),
        ("failed", DELETED_DELIVERY_REASON),
    ]
    assert "Traceback" not in output


async def test_no_access_token_is_stored_with_a_delivery(world: World, engine: AsyncEngine) -> None:
    """`app_user_auth` is minted when an attempt is sent, never written to the database: the log
    shows the request's body as sent with the access token redacted."""
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await bot(world, provider)
    with receivers(lambda n: Reply(500) if n == 0 else Reply()) as (receiver,), worker():
        await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()
    tokens = [body["app_user_auth"]["access_token"] for body in verified(receiver, app.secret)]
    assert len(tokens) == 2 and all(tokens)
    async with AsyncSession(engine) as session:
        stored = [
            row[0]
            for table in ("outbound_deliveries", "webhook_log_entries")
            for row in await session.execute(
                text(f"SELECT row_to_json(t)::text FROM {table} AS t WHERE app_id = :app"),  # noqa: S608
                {"app": app.id},
            )
        ]
    assert len(stored) == 3  # the delivery and its two attempts
    for row in stored:
        assert not any(token in row for token in tokens)
        assert row.count("access_token") == row.count(f'\\"access_token\\":\\"{REDACTED}\\"')
    assert sum("access_token" in row for row in stored) == 2  # each attempt's request body
