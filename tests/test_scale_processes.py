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

import httpx
import psutil
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.settings import Settings
from tests.live_server import serve
from tests.test_webhooks_delivery import World, chat_event, sub
from tests.webhook_helpers import FAST_ENV, Reply, cleanup, receivers, worker

BOUND = 3  # attempts in flight per endpoint, across all workers
ENV = {**FAST_ENV, "APPS_API_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT": str(BOUND)}


def slow_ok(_: int) -> Reply:
    time.sleep(0.1)  # attempts overlap, so the bound is what limits them
    return Reply(200, b"ok")


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
                    await asyncio.sleep(1.0)  # README, Limits: "webhook changes take effect" within 1 s
                    await asyncio.gather(*(publish(client, "b", batch) for batch in range(6)))
                    await world.settle(timeout=120)
                outputs = api.output()
        requests = {"before": list(before.requests), "after": list(after.requests)}
        bounds = (before.max_in_flight, after.max_in_flight)
        same_id = (before.max_concurrent_same_id, after.max_concurrent_same_id)

        received = {
            name: Counter(json.loads(request.body)["resource_id"] for request in got)
            for name, got in requests.items()
        }
        assert set(received["before"]) == {f"a-{b}-{i}" for b in range(12) for i in range(5)}
        assert set(received["after"]) == {f"b-{b}-{i}" for b in range(6) for i in range(5)}
        assert same_id == (1, 1)  # never one delivery's attempt in flight twice
        assert max(bounds) <= BOUND and bounds[0] > 1, bounds
        deliveries = await world.deliveries(app.id)
        assert len(deliveries) == 90 and {d.status for d in deliveries} == {"successful"}
        assert " ERROR " not in outputs and "Traceback" not in outputs, outputs
    finally:
        await cleanup(engine, world.organization_ids, world.app_ids)
