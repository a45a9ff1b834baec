"""Graceful shutdown: SIGTERM lets in-flight requests and deliveries finish (real processes)."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub
from tests.fixtures.live_server import SLOW_APP_FACTORY, api_server
from tests.fixtures.webhooks import Reply, eventually, receivers
from tests.fixtures.webhooks import worker as worker_process

pytestmark = pytest.mark.subprocess


@pytest.mark.slow
async def test_sigterm_lets_an_in_flight_api_request_finish(settings: Settings) -> None:
    with api_server(factory=SLOW_APP_FACTORY) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            slow = asyncio.create_task(client.get("/test-slow", params={"seconds": 3}))
            await eventually(lambda: "slow request started" in server.output(), what="the slow request")
            server.process.send_signal(signal.SIGTERM)
            await eventually(lambda: "Shutting down" in server.output(), what="the shutdown")
            assert not slow.done()  # still in flight when the shutdown began
            response = await slow
            exit_code = await asyncio.to_thread(server.process.wait, 30)
        output = server.output()
    assert response.status_code == 200 and response.json() == {"slept": "3.0"}
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert exit_code in (0, -signal.SIGTERM), output
    assert output.index("Shutting down") < output.index("GET /test-slow 200")
    assert "Application shutdown complete" in output


async def test_sigterm_lets_an_in_flight_delivery_finish(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with receivers(lambda n: Reply(hang=True)) as (receiver,):
        with worker_process(APPS_API_WEBHOOK_TIMEOUT="30") as running:
            await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
            await world.install(org, app)
            await world.publish(chat_event(org.org_id))
            await eventually(lambda: receiver.in_flight == 1, what="the attempt in flight")
            running.process.send_signal(signal.SIGTERM)
            await eventually(lambda: "shutdown on SIGTERM" in running.output(), what="the shutdown")
            # The worker takes no new job but waits for the attempt: the receiver answers now.
            receiver.release.set()
            exit_code = await asyncio.to_thread(running.process.wait, 60)
            output = running.output()
        await world.settle()
    assert exit_code == 0, output
    assert len(receiver.requests) == 1  # finished once, not cancelled and retried
    log = await world.log(app.id)
    assert [(e.retry_index, e.status, e.response_status_code) for e in log] == [(0, "successful", 200)]
    (delivery,) = await world.deliveries(app.id)
    assert delivery.status == "successful" and delivery.locked_by is None
