"""Delivery metrics: the worker's outcomes and latency, the API's view of the queue."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.outbox import build_delivery
from apps_api.kit.db import unit_of_work
from apps_api.main import create_app
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub
from tests.fixtures.factories import make_app
from tests.fixtures.live_server import committed_tenant, free_port
from tests.fixtures.webhooks import Reply, receivers
from tests.fixtures.webhooks import worker as worker_process
from tests.fixtures.world import delete_organizations


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0.0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$", re.MULTILINE)
    found = pattern.search(text)
    return float(found.group(2)) if found else 0.0


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {settings.metrics_token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            yield client


async def test_metrics_show_queue_depth_and_the_oldest_due_delivery(
    live: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    before = (await live.get("/metrics")).text
    assert metric(before, "apps_api_queue_metrics_up") == 1.0
    owner = await committed_tenant(engine, "Metrics")
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, unit_of_work(session):
            app = await make_app(session, owner.organization)
            for minutes_ago, status in ((90, "pending"), (5, "pending"), (-60, "pending"), (1, "started")):
                delivery, entry = build_delivery(
                    kind="webhook",
                    app_id=app.id,
                    organization_id=owner.org_id,
                    endpoint_url="https://metrics.example.com/hook",
                    channel=f"/api/v5/orgs/{owner.org_id}/chats",
                    action="added",
                    resource_id=str(uuid.uuid4()),
                    payload={},
                )
                delivery.next_attempt_at = utcnow() - timedelta(minutes=minutes_ago)
                delivery.status = status
                session.add(delivery)
                await session.flush()
                session.add(entry)
        text = (await live.get("/metrics")).text
        assert metric(text, "apps_api_deliveries_queued", state="due") >= 2
        assert metric(text, "apps_api_deliveries_queued", state="scheduled") >= 1
        assert metric(text, "apps_api_deliveries_queued", state="in_flight") >= 1
        assert metric(text, "apps_api_oldest_due_delivery_age_seconds") >= 89 * 60
        due_before = metric(before, "apps_api_deliveries_queued", state="due")
        assert metric(text, "apps_api_deliveries_queued", state="due") - due_before == 2
    finally:
        await delete_organizations(engine, [owner.org_id])


async def test_metrics_answer_when_the_database_is_down(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:9/none"})
    app = create_app(down)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"Authorization": f"Bearer {settings.metrics_token}"},
        ) as client,
    ):
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert metric(response.text, "apps_api_queue_metrics_up") == 0.0


@pytest.mark.subprocess
async def test_the_worker_serves_delivery_outcomes_and_latency(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    port = free_port()
    with (
        receivers(None, lambda n: Reply(410, b"gone"), lambda n: Reply(500 if n == 0 else 200)) as (
            ok,
            gone,
            flaky,
        ),
        worker_process(APPS_API_WORKER_METRICS_PORT=str(port)) as running,
    ):
        for receiver in (ok, gone, flaky):
            await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "worker metrics on" in running.output()
    assert metric(text, "apps_api_delivery_attempts_total", kind="webhook", outcome="success") == 2.0
    assert metric(text, "apps_api_delivery_attempts_total", kind="webhook", outcome="gone") == 1.0
    assert metric(text, "apps_api_delivery_attempts_total", kind="webhook", outcome="http_5xx") == 1.0
    assert metric(text, "apps_api_deliveries_finished_total", kind="webhook", status="successful") == 2.0
    assert metric(text, "apps_api_deliveries_finished_total", kind="webhook", status="failed") == 1.0
    assert metric(text, "apps_api_delivery_latency_seconds_count", kind="webhook") == 2.0
    assert metric(text, "apps_api_delivery_attempt_duration_seconds_count", kind="webhook") == 4.0
