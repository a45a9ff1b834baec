"""Endpoint care (issue 15): test events, recover, automatic disabling, health at a glance.

Real worker processes deliver to real receivers on 127.0.0.1; the API runs in process on the
committed database. Waits poll; nothing asserts durations.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import timedelta
from typing import Any, get_args

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.delivery.attempts import Deliverer
from apps_api.delivery.engine import settle
from apps_api.delivery.health import DISABLED_DELIVERY_REASON, disable_failing_webhooks
from apps_api.delivery.outbox import build_delivery, endpoint_host
from apps_api.delivery.states import AttemptStatus, DeliveryStatus
from apps_api.models import Event, Webhook, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.outbound.client import Outcome, guarded_client
from apps_api.settings import Settings
from apps_api.webhooks import schemas
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
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.webhooks import Reply, eventually, receivers, worker


def hand_count(entries: list[WebhookLogEntry]) -> dict[str, Any]:
    """The delivery stats of these entries, counted by hand (percentiles by nearest rank)."""
    durations = sorted(entry.duration for entry in entries if entry.duration is not None)

    def rank(fraction: float) -> int | None:
        return durations[math.ceil(fraction * len(durations)) - 1] if durations else None

    return {
        "successful": sum(entry.status == "successful" for entry in entries),
        "failed": sum(entry.status == "failed" for entry in entries),
        "pending": sum(entry.status in ("pending", "started") for entry in entries),
        "p50_duration_ms": rank(0.5),
        "p95_duration_ms": rank(0.95),
    }


@pytest.mark.subprocess
async def test_a_test_event_arrives_signed_logged_and_retried(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider = await world.tenant("Provider")
    app = await world.app(provider)
    with receivers(lambda n: Reply(500, b"not yet") if n == 0 else Reply()) as (receiver,), worker():
        webhook_id = await world.webhook(provider, app, receiver.url, sub(CHATS))
        view = (await api.get(webhook_url(provider, app.id, webhook_id), headers=provider.headers)).json()
        assert view["delivery_stats"] == {
            "successful": 0,
            "failed": 0,
            "pending": 0,
            "p50_duration_ms": None,
            "p95_duration_ms": None,
        }
        assert view["last_success_at"] is None and view["is_disabled"] is False

        sent = await api.post(webhook_url(provider, app.id, webhook_id, "/test"), headers=provider.headers)

        assert sent.status_code == 202, sent.text
        pending = sent.json()
        assert pending["status"] == "pending" and pending["action"] == "test"
        assert pending["webhook_id"] == str(webhook_id) and pending["retry_index"] == 0
        await world.settle()

    path = webhook_url(provider, app.id, webhook_id)
    bodies = verified(receiver, app.secret)
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1
    assert set(bodies[0]) == {"channel", "action", "resource_id", "resource"}
    assert bodies[0]["channel"] == path and bodies[0]["action"] == "test"
    assert bodies[0]["resource_id"] == str(webhook_id)
    assert bodies[0]["resource"]["id"] == str(webhook_id)
    assert bodies[0]["resource"]["endpoint_url"] == receiver.url
    entries = await entries_of(engine, webhook_id)
    assert [(entry.status, entry.retry_index) for entry in entries] == [("failed", 0), ("successful", 1)]
    assert entries[0].id == uuid.UUID(pending["id"])
    after = (await api.get(path, headers=provider.headers)).json()
    assert after["last_success_at"] is not None and after["last_failure_at"] is not None
    assert after["delivery_stats"] == hand_count(entries)
    listed = (
        await api.get(
            f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks", headers=provider.headers
        )
    ).json()
    assert listed["results"] == [after]


@pytest.mark.subprocess
@pytest.mark.slow
async def test_recover_requeues_exactly_the_failed_deliveries_since_then(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    failing = True
    with receivers(lambda n: Reply(500) if failing else Reply()) as (receiver,), worker():
        webhook_id = await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id, resource_id="before"))
        await world.settle()
        since = utcnow()
        await world.publish(
            chat_event(org.org_id, resource_id="after-1"), chat_event(org.org_id, resource_id="after-2")
        )
        await world.settle()
        failed_ids = {request.headers["webhook-id"]: request.body for request in receiver.requests}
        assert len(failed_ids) == 3
        too_old = await api.post(
            webhook_url(provider, app.id, webhook_id, "/recover"),
            json={"since": (utcnow() - timedelta(days=8)).isoformat()},
            headers=provider.headers,
        )
        assert too_old.status_code == 400, too_old.text
        failing = False
        before = len(receiver.requests)

        recovered = await api.post(
            webhook_url(provider, app.id, webhook_id, "/recover"),
            json={"since": since.isoformat()},
            headers=provider.headers,
        )

        assert recovered.status_code == 202, recovered.text
        assert recovered.json() == {"requeued": 2}
        await world.settle()

    again = receiver.requests[before:]
    assert len(again) == 2
    deliveries = {d.resource_id: d for d in await world.deliveries(app.id)}
    assert {request.headers["webhook-id"] for request in again} == {
        deliveries["after-1"].message_id,
        deliveries["after-2"].message_id,
    }
    assert all(failed_ids[request.headers["webhook-id"]] == request.body for request in again)
    assert [d.status for d in deliveries.values()].count("successful") == 2
    assert deliveries["before"].status == "failed"
    entries = await entries_of(engine, webhook_id)
    view = (await api.get(webhook_url(provider, app.id, webhook_id), headers=provider.headers)).json()
    assert view["delivery_stats"] == hand_count(entries)
    assert view["delivery_stats"]["successful"] == 2 and view["delivery_stats"]["failed"] == 12


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_webhook_that_only_fails_is_disabled_announced_and_re_enabled(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    failing = True
    # Ten quick attempts, then a retry far away: the sweeper finds the delivery pending.
    schedule = ",".join(["0.2"] * 9 + ["600"])
    environment = {"APPS_API_WEBHOOK_DISABLE_AFTER_DAYS": "0", "APPS_API_WEBHOOK_RETRY_SCHEDULE": schedule}
    with (
        receivers(lambda n: Reply(500) if failing else Reply(), None) as (bad, watcher),
        worker(**environment),
    ):
        webhook_id = await world.webhook(provider, app, bad.url, sub(CHATS))
        await world.webhook(
            provider, app, watcher.url, sub("/api/v5/orgs/{organization_id}/owned_apps/*/webhooks")
        )
        await world.install(org, app)
        await world.install(provider, app, scopes=["settings"])
        path = webhook_url(provider, app.id, webhook_id)

        await world.publish(chat_event(org.org_id))

        async def disabled() -> bool:
            return bool((await api.get(path, headers=provider.headers)).json()["is_disabled"])

        await eventually(disabled, what="the webhook disabled")
        view = (await api.get(path, headers=provider.headers)).json()
        assert view["disabled_at"] is not None
        assert view["disabled_reason"] == "Every attempt failed for 0 days (10 failed attempts)."
        await world.settle()
        (delivery,) = await deliveries_of(engine, webhook_id)
        assert delivery.status == "failed" and delivery.attempt_count == 10
        entries = await entries_of(engine, webhook_id)
        assert len(entries) == 11 and entries[-1].reason == DISABLED_DELIVERY_REASON
        assert entries[-1].status == "failed" and len(bad.requests) == 10

        def announced() -> bool:
            return any(
                body["action"] == "changed" and body["resource_id"] == str(webhook_id)
                for body in verified(watcher, app.secret)
            )

        await eventually(announced, what="the changed event")
        (change,) = [b for b in verified(watcher, app.secret) if b["action"] == "changed"]
        assert change["channel"] == f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks"
        assert change["resource"] == {
            "is_disabled": True,
            "disabled_at": view["disabled_at"],
            "disabled_reason": view["disabled_reason"],
        }

        # New events skip it.
        (skipped,) = await world.publish(chat_event(org.org_id, resource_id="skipped"))
        await eventually(lambda: dispatched(engine, skipped), what="the event dispatched")
        assert len(await deliveries_of(engine, webhook_id)) == 1
        assert (
            await api.post(webhook_url(provider, app.id, webhook_id, "/test"), headers=provider.headers)
        ).status_code == 409

        failing = False
        enabled = await api.patch(path, json={"is_disabled": False}, headers=provider.headers)
        assert enabled.status_code == 200, enabled.text
        assert (enabled.json()["is_disabled"], enabled.json()["disabled_at"]) == (False, None)
        # A webhook change applies to events committed a second later at the latest (dispatch.py):
        # events dispatched before the worker's index sees it skip the webhook. Publish until one
        # reaches it, waiting on each event's dispatch, never on a clock.
        probes: list[int] = []

        async def delivered_again() -> bool:
            (probe,) = await world.publish(chat_event(org.org_id, resource_id=f"welcome-back-{len(probes)}"))
            probes.append(probe)
            await eventually(lambda: dispatched(engine, probe), what="the event dispatched")
            return len(await deliveries_of(engine, webhook_id)) == 2

        await eventually(delivered_again, what="a delivery after re-enabling")
        await world.settle()
        assert len(bad.requests) == 11

    view = (await api.get(path, headers=provider.headers)).json()
    assert view["is_disabled"] is False and view["last_success_at"] is not None


async def dispatched(engine: AsyncEngine, event_id: int) -> bool:
    async with AsyncSession(engine) as session:
        return await session.scalar(select(Event.dispatched_at).where(Event.id == event_id)) is not None


async def test_disabling_waits_for_the_days_and_the_count(session: AsyncSession, tenant: Tenant) -> None:
    """The threshold on a given clock: 5 days of failures with at least 10 failed attempts."""
    app = await make_app(session, tenant.organization)
    now = utcnow()
    hooks = [
        Webhook(app_id=app.id, organization_id=tenant.org_id, endpoint_url="https://a.example.com/h")
        for _ in range(2)
    ]
    session.add_all(hooks)
    await session.flush()
    await session.execute(
        update(Webhook).where(Webhook.id == hooks[0].id).values(failing_since=now, failures_in_streak=10)
    )
    await session.execute(
        update(Webhook).where(Webhook.id == hooks[1].id).values(failing_since=now, failures_in_streak=9)
    )

    async def run(at: timedelta) -> list[uuid.UUID]:
        return await disable_failing_webhooks(session=session, now=now + at, after_days=5, min_failures=10)

    assert await run(timedelta(days=4, hours=23)) == []
    assert await run(timedelta(days=5, minutes=1)) == [hooks[0].id]
    assert await run(timedelta(days=6)) == []  # already disabled; the other has too few failures
    events = (
        (await session.execute(select(Event).where(Event.resource_id == str(hooks[0].id)))).scalars().all()
    )
    assert [(event.action, event.resource["is_disabled"]) for event in events] == [("changed", True)]
    assert events[0].channel == f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    assert events[0].required_scope == "settings"


async def test_a_failure_streak_keeps_its_start_across_failed_batches(
    world: World, engine: AsyncEngine, settings: Settings
) -> None:
    """`failing_since` is when the streak began: were it restarted by every failed batch, a webhook
    that keeps failing would never be failing for long enough to be disabled."""
    provider = await world.tenant("Provider")
    app = await world.app(provider)
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/streak"
    webhook_id = await world.webhook(provider, app, url, sub(CHATS))
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    async with sessionmaker() as session, session.begin():
        for n in range(2):
            delivery, entry = build_delivery(
                kind="webhook",
                webhook_id=webhook_id,
                app_id=app.id,
                organization_id=provider.org_id,
                method="POST",
                endpoint_url=url,
                channel=f"/api/v5/orgs/{provider.org_id}/chats",
                action="added",
                resource_id=f"r{n}",
                payload={},
            )
            session.add(delivery)
            await session.flush()
            session.add(entry)

    async def streak() -> tuple[object, int]:
        async with AsyncSession(engine) as session:
            webhook = await session.get(Webhook, webhook_id)
            assert webhook is not None
            return webhook.failing_since, webhook.failures_in_streak

    host = endpoint_host(url)
    async with guarded_client(()) as client:
        deliverer = Deliverer(sessionmaker, settings, client, "worker-streak")
        for batch in (1, 2):
            _, (attempt,), _ = await settle(deliverer, host=host, wanted=1)
            plans, _, _ = await settle(deliverer, host=host, results=[(attempt, Outcome(status_code=500))])
            assert [plan and plan.status for plan in plans] == ["pending"]
            if batch == 1:
                began, _ = await streak()
                assert began is not None
    assert await streak() == (began, 2)


def test_the_states_in_code_are_the_wire_values() -> None:
    assert list(get_args(schemas.LogStatus)) == [status.value for status in AttemptStatus]
    assert [status.value for status in DeliveryStatus] == [status.value for status in AttemptStatus]
