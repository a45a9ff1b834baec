"""All the worker-side faults at once: two workers racing, one SIGKILLed mid-delivery, Redis
restarted empty while deliveries are queued. Every delivery arrives, the same `webhook-id` is
never in flight twice at once, and the log tells the truth about every attempt.

(tests/delivery/test_webhooks_delivery.py proves each fault alone; this is their combination, with the
log checked attempt by attempt against what the receiver saw.)
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.delivery.attempts import INTERRUPTED
from apps_api.embedded import start_redis
from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub
from tests.fixtures.webhooks import Reply, cleanup, eventually, receivers, worker

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

# Short leases so that the SIGKILLed worker's attempts are taken over within the test.
ENV = {"APPS_API_WEBHOOK_TIMEOUT": "5", "APPS_API_WEBHOOK_LEASE_SECONDS": "1"}


def slow_ok(_: int) -> Reply:
    time.sleep(0.2)  # long enough for attempts to overlap and for a kill to land mid-request
    return Reply(200, b"ok")


async def test_racing_workers_a_sigkill_and_an_empty_redis_lose_nothing(
    engine: AsyncEngine, settings: Settings
) -> None:
    state = Path(tempfile.mkdtemp(prefix="apps-api-redis-faults-"))
    redis_process, redis_url = start_redis(state)
    assert redis_process is not None
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=settings.queue_name)
    world = World(engine, pool, [], [])
    env = {**ENV, "APPS_API_REDIS_URL": redis_url}
    try:
        provider, org = await world.tenant("Provider"), await world.tenant("Org")
        app = await world.app(provider)
        with receivers(slow_ok) as (receiver,):
            await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
            await world.install(org, app)
            with worker(**env) as first, worker(**env):
                await world.publish(*(chat_event(org.org_id, resource_id=f"a-{i}") for i in range(30)))
                await eventually(lambda: len(receiver.requests) >= 5, what="the first deliveries")
                first.kill()  # mid-delivery: its leased attempts stay `started` until the lease lapses
                # Redis restarts empty while deliveries are queued in it.
                redis_process.terminate()
                redis_process.wait(10)
                redis_process, _ = start_redis(state)
                await world.publish(*(chat_event(org.org_id, resource_id=f"b-{i}") for i in range(30)))
                with worker(**env):
                    await world.settle(timeout=120)
        requests = list(receiver.requests)
        max_same_id_in_flight = receiver.max_concurrent_same_id
    finally:
        await pool.aclose()
        redis_process.terminate()
        redis_process.wait(10)

    try:
        expected = {f"a-{i}" for i in range(30)} | {f"b-{i}" for i in range(30)}
        received = Counter(json.loads(request.body)["resource_id"] for request in requests)
        assert set(received) == expected  # every delivery arrived (some twice: at least once)
        assert max_same_id_in_flight == 1  # never the same webhook-id twice at the same time
        deliveries = {d.id: d for d in await world.deliveries(app.id)}
        assert len(deliveries) == 60 and {d.status for d in deliveries.values()} == {"successful"}
        by_message = {d.message_id: d for d in deliveries.values()}
        sent = Counter(request.headers["webhook-id"] for request in requests)
        assert set(sent) == set(by_message)  # nothing sent that is not a delivery
        entries: dict[str, list[tuple[int, str, str | None]]] = {}
        for entry in await world.log(app.id):
            message = deliveries[entry.delivery_id].message_id
            entries.setdefault(message, []).append((entry.retry_index, entry.status, entry.reason))
        for message, attempts in entries.items():
            statuses = [status for _, status, _ in attempts]
            # Exactly one success, and every other attempt is the truth: interrupted by the kill.
            assert statuses.count("successful") == 1, attempts
            assert all(reason == INTERRUPTED for _, status, reason in attempts if status == "failed"), (
                attempts
            )
            assert sorted(index for index, _, _ in attempts) == list(range(len(attempts))), attempts
            # Each attempt the receiver saw is logged (an interrupted one may not have reached it).
            assert 1 <= sent[message] <= len(attempts), (message, sent[message], attempts)
            assert deliveries[by_message[message].id].attempt_count == len(attempts)
    finally:
        await cleanup(engine, world.organization_ids, world.app_ids)
