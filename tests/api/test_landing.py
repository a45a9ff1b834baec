"""`/` says what the service is and links to the docs and the console; every HTML page has the favicon."""

from __future__ import annotations

import uuid

import httpx

from apps_api.main import create_app
from apps_api.settings import Settings


async def test_the_landing_page_links_to_the_docs_and_the_console(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for link in ('href="/docs"', 'href="/redoc"', 'href="/console/"'):
        assert link in page.text
    assert "Apps API" in page.text and "default-src 'none'" in page.headers["content-security-policy"]


async def test_the_favicon_is_served_with_a_long_cache_and_named_on_every_page(
    client: httpx.AsyncClient,
) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg") and "max-age=604800" in icon.headers["cache-control"]
    pages = ["/", "/console/login", f"/apps/{uuid.uuid4()}/install?next=/", "/docs", "/redoc"]
    for path in pages:
        response = await client.get(path)
        assert 'icon" href="/favicon.ico"' in response.text, path


def test_neither_is_in_the_openapi_document(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    assert "/" not in paths and "/favicon.ico" not in paths
