"""Many processes against one PostgreSQL and one Redis: `apps-api serve --workers 2` (two API
processes sharing the port) and three `apps-api worker` processes under mixed load (real
processes on loopback). Nothing is lost, no attempt is in flight twice, the per-endpoint bound
holds across workers, and a webhook change made through one process holds for every event
committed 1 s later, whichever API process took it and whichever worker dispatched it."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

import httpx
import psutil
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.dispatch import INDEX_MAX_AGE_SECONDS
from apps_api.models import Event, Webhook
from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub
from tests.fixtures.live_server import serve
from tests.fixtures.webhooks import FAST_ENV, Reply, cleanup, eventually, receivers, worker

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

BOUND = 3  # attempts in flight per endpoint, across all workers
# How long a worker may match events against a webhook's old version, plus the time between the
# change's `updated_at` and its commit.
LIFETIME = timedelta(seconds=INDEX_MAX_AGE_SECONDS + 0.2)
ENV = {**FAST_ENV, "APPS_API_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT": str(BOUND)}


def slow_ok(_: int) -> Reply:
    time.sleep(0.1)  # attempts overlap, so the bound is what limits them
    return Reply(200, b"ok")


async def changed_time(engine: AsyncEngine, webhook_id: uuid.UUID) -> datetime:
    """When the webhook's last change was committed (its `updated_at`)."""
    async with AsyncSession(engine) as session:
        changed = await session.scalar(select(Webhook.updated_at).where(Webhook.id == webhook_id))
    assert changed is not None
    return changed


async def committed_times(engine: AsyncEngine, organization_id: uuid.UUID) -> dict[str, datetime]:
    """Each event's creation time (set before its commit) by resource id."""
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(Event.resource_id, Event.created_at).where(Event.organization_id == organization_id)
        )
    return {resource_id: created_at for resource_id, created_at in rows.all()}


def api_processes(pid: int) -> list[psutil.Process]:
    """The uvicorn worker processes of a `serve --workers N` (spawned by multiprocessing)."""
    return [child for child in psutil.Process(pid).children() if "spawn_main" in " ".join(child.cmdline())]


async def test_two_api_processes_and_three_workers_lose_nothing(
    settings: Settings, engine: AsyncEngine, arq_pool: ArqRedis
) -> None:
    world = World(engine, arq_pool, [], [])
    ingest = {"Authorization": f"Bearer {os.environ['APPS_API_INGEST_SERVICE_KEY']}"}
    try:
        provider, org = await world.tenant("Provider"), await world.tenant("Org")
        app = await world.app(provider)
        await world.install(org, app)
        with receivers(slow_ok, slow_ok) as (before, after):
            webhook_id = await world.webhook(
                provider, app, before.url, sub("/api/v5/orgs/{organization_id}/chats")
            )
            with serve("--workers", "2", **ENV) as api, worker(**ENV), worker(**ENV), worker(**ENV):
                await api.wait_ready()
                assert len(api_processes(api.process.pid)) == 2, api.output()

                async def publish(client: httpx.AsyncClient, prefix: str, batch: int) -> None:
                    events = [chat_event(org.org_id, resource_id=f"{prefix}-{batch}-{i}") for i in range(5)]
                    # A connection per request: the two processes share the accepted connections.
                    response = await client.post(
                        f"{api.url}/internal/v1/events",
                        json={"events": events},
                        headers={**ingest, "Connection": "close"},
                    )
                    assert response.status_code == 202, response.text

                async def browse(client: httpx.AsyncClient, round_: int) -> None:
                    owned = f"{api.url}/api/v5/orgs/{provider.org_id}/owned_apps"
                    created = await client.post(
                        owned,
                        json={
                            "name": f"Load {round_}",
                            "description": "d",
                            "is_app_user_required": False,
                            "terms_of_service_url": "https://example.com/tos",
                            "privacy_policy_url": "https://example.com/privacy",
                        },
                        headers=provider.headers,
                    )
                    assert created.status_code == 201, created.text
                    world.app_ids.append(uuid.UUID(created.json()["id"]))
                    listed = await client.get(owned, headers=provider.headers)
                    assert listed.status_code == 200
                    log = await client.get(f"{owned}/{app.id}/webhook_log_entries", headers=provider.headers)
                    assert log.status_code == 200
                    deleted = await client.delete(f"{owned}/{created.json()['id']}", headers=provider.headers)
                    assert deleted.status_code == 204, deleted.text

                # Mixed load: events through both API processes while apps are created, listed
                # and deleted through them.
                async with httpx.AsyncClient(timeout=30) as client:
                    await asyncio.gather(
                        *(publish(client, "a", batch) for batch in range(12)),
                        *(browse(client, round_) for round_ in range(6)),
                    )
                    await world.settle(timeout=120)

                    # The change, through the API; every event committed 1 s later follows it.
                    changed = await client.patch(
                        f"{api.url}/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks/{webhook_id}",
                        json={"endpoint_url": after.url},
                        headers=provider.headers,
                    )
                    assert changed.status_code == 200, changed.text
                    # README, Limits: "webhook changes take effect" for events committed 1 s
                    # later. No sleep for that second: batches are published (each settled)
                    # until one committed past that second has arrived, then six more at once;
                    # the contract is asserted below on each event's commit time against the
                    # change's.
                    changed_at = await changed_time(engine, webhook_id)
                    rounds: list[int] = []

                    async def a_batch_past_the_second() -> bool:
                        batch = len(rounds)
                        rounds.append(batch)
                        await publish(client, "b", batch)
                        await world.settle(timeout=120)
                        committed = await committed_times(engine, org.org_id)
                        return all(committed[f"b-{batch}-{i}"] > changed_at + LIFETIME for i in range(5))

                    await eventually(a_batch_past_the_second, timeout=180, what="a batch a second later")
                    await asyncio.gather(*(publish(client, "c", batch) for batch in range(6)))
                    await world.settle(timeout=120)
                outputs = api.output()
        requests = {"before": list(before.requests), "after": list(after.requests)}
        bounds = (before.max_in_flight, after.max_in_flight)
        same_id = (before.max_concurrent_same_id, after.max_concurrent_same_id)

        received = {
            name: Counter(json.loads(request.body)["resource_id"] for request in got)
            for name, got in requests.items()
        }
        first = {f"a-{b}-{i}" for b in range(12) for i in range(5)}
        then = {f"{p}-{b}-{i}" for p, n in (("b", len(rounds)), ("c", 6)) for b in range(n) for i in range(5)}
        assert first <= set(received["before"]) and not first & set(received["after"])
        # Each later event reached one of the two URLs, once; the old one only if it was committed
        # within a second of the change (a margin for the change's own commit after its timestamp).
        assert Counter(received["before"]) + Counter(received["after"]) == Counter(first | then)
        committed = await committed_times(engine, org.org_id)
        late = {rid for rid in then if committed[rid] > changed_at + LIFETIME}
        assert {f"c-{b}-{i}" for b in range(6) for i in range(5)} <= late
        assert late <= set(received["after"]), late - set(received["after"])
        assert same_id == (1, 1)  # never one delivery's attempt in flight twice
        assert max(bounds) <= BOUND and bounds[0] > 1, bounds
        deliveries = await world.deliveries(app.id)
        assert len(deliveries) == len(first | then) and {d.status for d in deliveries} == {"successful"}
        assert " ERROR " not in outputs and "Traceback" not in outputs, outputs
    finally:
        await cleanup(engine, world.organization_ids, world.app_ids)
