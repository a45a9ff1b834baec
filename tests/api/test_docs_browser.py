"""/docs and /redoc render in headless Chromium with every request off this machine blocked.

The pages must load Swagger UI and ReDoc from the service itself (no CDN), and their
Content-Security-Policy must let them run: a page that shows the operations proves both.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.browser import BROWSER, NewPage

pytestmark = [*BROWSER, pytest.mark.slow]

LOOPBACK = {"127.0.0.1", "::1", "[::1]"}


def _operation_count(schema: dict[str, Any]) -> int:
    return sum(1 for item in schema["paths"].values() for _ in item)


def _webhook_count(schema: dict[str, Any]) -> int:
    """The channel catalogue's OpenAPI `webhooks` (Swagger UI lists them as operations too)."""
    return sum(1 for item in schema.get("webhooks", {}).values() for _ in item)


async def test_docs_render_offline(live_server: str, new_page: NewPage) -> None:
    from playwright.async_api import Route

    schema = httpx.get(f"{live_server}/openapi.json").json()
    operations = _operation_count(schema)
    blocked: list[str] = []
    problems: list[str] = []

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    page = await new_page(viewport={"width": 1200, "height": 1000})
    await page.context.route("**/*", loopback_only)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None,
    )

    response = await page.goto(f"{live_server}/docs")
    assert response is not None and response.status == 200
    policy = await response.header_value("content-security-policy")
    assert policy is not None and "default-src 'none'" in policy
    await page.wait_for_selector(".opblock", timeout=30_000)
    webhooks = _webhook_count(schema)
    assert webhooks > 0
    assert await page.locator(".opblock").count() == operations + webhooks
    assert await page.locator(".opblock-summary-path", has_text="/owned_apps").count() > 0

    response = await page.goto(f"{live_server}/redoc")
    assert response is not None and response.status == 200
    assert await response.header_value("content-security-policy") is not None
    await page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    assert await page.locator("[data-section-id^='operation/']").count() == operations + webhooks
    assert await page.get_by_text("Create an owned app").count() > 0
    assert blocked == [], f"the pages asked for outside resources: {blocked}"
    # The policy refusing an outside image (ReDoc's "powered by" logo) is the policy working;
    # anything else it refuses (a script, a style, this origin) is a page it breaks.
    assert [problem for problem in problems if not _outside_image_refused(problem)] == []


def _outside_image_refused(problem: str) -> bool:
    prefix = "console: Loading the image '"
    if not problem.startswith(prefix) or "violates the following Content Security Policy" not in problem:
        return False
    url = problem[len(prefix) :].split("'", 1)[0]
    return urlsplit(url).hostname not in LOOPBACK
