"""Issue 13, item 5: /metrics is not public; /healthz and /readyz say only ok / not ok."""

from __future__ import annotations

import httpx

from apps_api.main import create_app
from apps_api.settings import Settings


async def test_metrics_need_the_bearer_token_else_404(client: httpx.AsyncClient, settings: Settings) -> None:
    assert settings.metrics_token
    unknown = await client.get("/no-such-path")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Token {settings.metrics_token}"},
        {"Authorization": f"Bearer {settings.metrics_token}x"},
    ):
        response = await client.get("/metrics", headers=headers)
        # The same answer as a path that does not exist: nothing says metrics live here.
        assert (response.status_code, response.json()) == (404, unknown.json()), headers
        assert "apps_api_http_requests_total" not in response.text
    allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {settings.metrics_token}"})
    assert allowed.status_code == 200 and "apps_api_http_requests_total" in allowed.text


async def test_metrics_are_404_for_everyone_without_a_configured_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": None}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            assert (await client.get("/metrics", headers=headers)).status_code == 404
        assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readiness_reveals_nothing_beyond_ok_or_not(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:9/none"})
    app = create_app(down)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
