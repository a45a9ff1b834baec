"""Overload is answered, not suffered: a burst past what the process admits gets fast 503s with
`Retry-After`, a pool or statement timeout is a 503 too, never a 500, and nothing is logged at
ERROR (real `apps-api serve` processes on loopback, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from apps_api.kit.db import SessionDep
from apps_api.observability.shedding import LoadShedMiddleware
from apps_api.settings import Settings
from tests.fixtures.live_server import committed_tenant, serve


def shed_count(metrics: str, reason: str) -> float:
    match = re.search(rf'^apps_api_http_requests_shed_total\{{reason="{reason}"\}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def burst(url: str, headers: dict[str, str], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.get(url, headers=headers) for _ in range(count)))


def assert_answered_not_suffered(responses: list[httpx.Response], output: str) -> None:
    statuses = {response.status_code for response in responses}
    assert statuses <= {200, 503}, statuses
    assert 200 in statuses and 503 in statuses, statuses
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert response.json()["detail"].startswith("Service temporarily overloaded")
    assert " ERROR " not in output and "Traceback" not in output, output


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("reason", "env"),
    [
        # Two requests in flight at most: a burst of 150 is mostly shed at the door.
        ("in_flight", {"APPS_API_MAX_REQUESTS_IN_FLIGHT": "2"}),
        # No bound, one connection, a 1 ms pool wait: the burst queues on the pool and times out.
        (
            "pool_timeout",
            {
                "APPS_API_MAX_REQUESTS_IN_FLIGHT": "0",
                "APPS_API_DB_POOL_SIZE": "1",
                "APPS_API_DB_MAX_OVERFLOW": "0",
                "APPS_API_DB_POOL_TIMEOUT": "0.001",
            },
        ),
    ],
)
async def test_an_overload_burst_gets_only_200s_and_503s(
    settings: Settings, engine: AsyncEngine, reason: str, env: dict[str, str]
) -> None:
    owner = await committed_tenant(engine, "Overload")
    with serve(**env) as server:
        await server.wait_ready()
        url = f"{server.url}/api/v5/orgs/{owner.org_id}/owned_apps"
        responses = await burst(url, owner.headers, 150)
        async with httpx.AsyncClient(timeout=10) as client:
            # The process recovers at once: the next request is admitted.
            after = await client.get(url, headers=owner.headers)
            metrics = (
                await client.get(
                    f"{server.url}/metrics",
                    headers={"Authorization": f"Bearer {settings.metrics_token}"},
                )
            ).text
        output = server.output()
    assert_answered_not_suffered(responses, output)
    assert after.status_code == 200
    shed = sum(response.status_code == 503 for response in responses)
    assert shed_count(metrics, reason) == shed


async def test_a_statement_timeout_is_a_503_not_a_500(app: Any, client: httpx.AsyncClient) -> None:
    @app.get("/test-statement-timeout", include_in_schema=False)
    async def slow_statement(session: SessionDep) -> dict[str, str]:
        await session.execute(text("SET LOCAL statement_timeout = '10ms'"))
        await session.execute(text("SELECT pg_sleep(1)"))
        return {"slept": "1"}

    response = await client.get("/test-statement-timeout")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


async def test_the_bound_admits_exactly_limit_requests() -> None:
    """Limit 1 with one request held: the second is shed at once, and after the first finishes
    the next is admitted again (the bound is `limit`, not `limit` + 1)."""
    held, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        held.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=LoadShedMiddleware(slow, limit=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        first = asyncio.create_task(client.get("/api/v5/public_apps"))
        await asyncio.wait_for(held.wait(), 10)
        # Were it admitted, it would wait on `release` with the first: a bounded wait fails it.
        second = await asyncio.wait_for(client.get("/api/v5/public_apps"), 10)
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        release.set()
        assert (await first).status_code == 200
        assert (await client.get("/api/v5/public_apps")).status_code == 200


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_of_zero_or_less_bounds_nothing(limit: int) -> None:
    """APPS_API_MAX_REQUESTS_IN_FLIGHT=0 (or a negative value) turns the bound off: with one
    request held, the next is still admitted, not shed."""
    held, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if not held.is_set():
            held.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=LoadShedMiddleware(slow, limit=limit))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        first = asyncio.create_task(client.get("/api/v5/public_apps"))
        await asyncio.wait_for(held.wait(), 10)
        second = await asyncio.wait_for(client.get("/api/v5/public_apps"), 10)
        assert second.status_code == 200
        release.set()
        assert (await first).status_code == 200


async def test_the_bound_holds_after_requests_finish() -> None:
    """Each finished request frees exactly its own slot: after three came and went, limit 1 with
    one request held still sheds the next (a slot freed twice would let it in)."""
    hold = asyncio.Event()
    held, release = asyncio.Event(), asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if hold.is_set():
            held.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=LoadShedMiddleware(app, limit=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(3):
            assert (await client.get("/api/v5/public_apps")).status_code == 200
        hold.set()
        first = asyncio.create_task(client.get("/api/v5/public_apps"))
        await asyncio.wait_for(held.wait(), 10)
        second = await asyncio.wait_for(client.get("/api/v5/public_apps"), 10)
        assert second.status_code == 503
        release.set()
        assert (await first).status_code == 200
