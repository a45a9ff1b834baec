"""Health, readiness, metrics, request ids and the request-level limits."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from apps_api.logs import JsonFormatter
from apps_api.main import create_app
from apps_api.observability.context import RequestIdFilter, request_id_var
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant


@pytest.fixture
async def live_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real lifespan (engine, arq pool), as uvicorn runs it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
def echo_route(app: Any) -> str:
    """A JSON-body route, to exercise the body limits on a handler that reads its body."""
    from fastapi import APIRouter, Body

    router = APIRouter()

    @router.post("/api/v5/test-echo")
    async def echo(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return payload

    app.include_router(router)
    return "/api/v5/test-echo"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_with_reachable_dependencies(live_client: httpx.AsyncClient) -> None:
    response = await live_client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_and_api_fail_fast_with_503_when_database_is_down(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:9/none"})
    app = create_app(down)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ready = await client.get("/readyz")
            api = await client.get("/api/v5/public_apps", headers={"Authorization": "Token whatever"})
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable"}  # which dependency failed is only logged
    assert api.status_code == 503
    assert api.headers["retry-after"] == "5"
    assert "unreachable" in api.json()["detail"]


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    app_id = "00000000-0000-0000-0000-000000000001"
    await client.get(f"/api/v5/public_apps/{app_id}", headers=tenant.headers)
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {settings.metrics_token}"})
    assert response.status_code == 200
    text = response.text
    assert 'route="/api/v5/public_apps/{app_id}"' in text
    assert app_id not in text  # templates, not raw paths: bounded label cardinality
    assert "apps_api_http_request_duration_seconds_bucket" in text


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(generated.headers["x-request-id"]) == 32


async def test_oversized_body_is_413_by_content_length(client: httpx.AsyncClient, settings: Settings) -> None:
    body = b"{" + b" " * settings.max_body_bytes + b"}"
    response = await client.post(
        "/api/v5/public_apps", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds" in response.json()["detail"]


async def test_oversized_chunked_body_is_413_without_reading_it_whole(
    client: httpx.AsyncClient, settings: Settings, echo_route: str
) -> None:
    chunks_sent = 0
    total_chunks = (settings.max_body_bytes // 65536) * 4

    async def stream() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(total_chunks):
            chunks_sent += 1
            yield b" " * 65536

    response = await client.post(echo_route, content=stream(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert chunks_sent < total_chunks  # reading stopped once the limit was crossed


async def test_wrong_content_type_is_415(client: httpx.AsyncClient, tenant: Tenant, echo_route: str) -> None:
    response = await client.post(
        echo_route, content=b"name=x", headers={**tenant.headers, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    accepted = await client.post(echo_route, json={"name": "x"})
    assert accepted.status_code == 200 and accepted.json() == {"name": "x"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "Malformed JSON body."),
        (b'{"name": "' + bytes([0xFF, 0xFE]) + b'"}', "Malformed JSON body."),
        (b"[" * 50_000 + b"]" * 50_000, "Malformed JSON body."),
        (b"", "Invalid request."),
    ],
    ids=["syntax", "invalid-utf8", "deeply-nested", "empty"],
)
async def test_malformed_json_bodies_are_400_never_500(
    client: httpx.AsyncClient, echo_route: str, body: bytes, detail: str
) -> None:
    response = await client.post(echo_route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail
    assert "body" in response.json()["errors"]


def test_json_logs_carry_the_request_id() -> None:
    token = request_id_var.set("req-42")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        RequestIdFilter().filter(record)
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert entry["request_id"] == "req-42"
    assert entry["message"] == "hello" and entry["level"] == "INFO"
