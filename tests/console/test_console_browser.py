"""The developer console end to end in headless Chromium (Debian's package, driven by Playwright).

A real uvicorn server on 127.0.0.1, a real arq worker process delivering webhooks to a receiver
on 127.0.0.1, committed data. Two browser contexts: the app provider and an installing
organization (a partner). Screenshots of each main page go to test-artifacts/.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.matching import INSTALLATIONS_PATTERN
from apps_api.installations.service import install_app
from apps_api.kit.db import unit_of_work
from apps_api.models import App, AppInstallation
from apps_api.platform import service as platform
from apps_api.webhooks import service as webhooks_service
from apps_api.webhooks.schemas import WebhookCreate
from tests.fixtures.browser import BROWSER, NewPage, screenshot, sign_in, signed_in_page
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.installflow import make_installer
from tests.fixtures.webhooks import Reply, cleanup, receivers, worker

SENT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")
pytestmark = [*BROWSER, pytest.mark.subprocess, pytest.mark.slow]


@dataclass
class _World:
    provider: Tenant
    installer: Tenant


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[_World]:
    """Committed data (the browser, the server and the worker see it), removed afterwards."""
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        provider = await make_installer(setup, name="Bot Makers Oy", features=["apps", "app_provider"])
        installer = await make_installer(setup, name="Shop Inc")
        await platform.add_partnership(session=setup, a=provider.org_id, b=installer.org_id)
        await setup.commit()
    try:
        yield _World(provider=provider, installer=installer)
    finally:
        async with AsyncSession(engine) as check:
            app_ids = list(
                (
                    await check.execute(select(App.id).where(App.owned_by_organization_id == provider.org_id))
                ).scalars()
            )
        await cleanup(engine, [provider.org_id, installer.org_id], app_ids)


async def _shot(page: Any, name: str) -> None:
    await screenshot(page, f"console-{name}")


async def _reload_until(page: Any, selector: str, text: str, *, timeout: float = 60) -> None:
    """Reload the page until `selector` shows `text` (the worker delivers in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        element = await page.query_selector(selector)
        if element is not None and text in await element.inner_text():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never showed {text!r}")
        await page.wait_for_timeout(300)
        await page.reload()


async def test_console_in_chromium(
    live_server: str, world: _World, engine: AsyncEngine, new_page: NewPage
) -> None:
    base = live_server
    reply = Reply(status=200, body=b'{"received": true}', headers={"content-type": "application/json"})
    with receivers(lambda _: reply) as (receiver,), worker():
        await _run(new_page, base, world, engine, receiver)


async def _run(new_page: NewPage, base: str, world: _World, engine: AsyncEngine, receiver: Any) -> None:
    provider = await new_page()

    # No session: the login page, for the page asked for.
    await provider.goto(base + "/console/apps")
    await _shot(provider, "login")
    await sign_in(provider, world.provider.user.email)
    assert provider.url == base + "/console/apps"
    assert await provider.title() == "Apps · giosg Apps console"

    # Create an app: the API's field error next to the field, then fixed.
    await provider.click("#new-app")
    await provider.fill("#name", "Weather Bot")
    await provider.fill("#description", "Tells your visitors the weather.")
    await provider.fill("#terms_of_service_url", "weather.example/tos")
    await provider.fill("#privacy_policy_url", "https://weather.example/privacy")
    await provider.check("#is_available_to_partners")
    await provider.check("#is_app_user_required")
    await provider.fill("#app_user_default_first_name", "Weather")
    await provider.fill("#app_user_default_last_name", "Bot")
    await provider.check("#scope-settings")
    await provider.check("#scope-users")
    async with provider.expect_navigation():
        await provider.click("#save-app")
    assert "Enter a valid absolute http:// or https:// URL." in await provider.inner_text(
        "#terms_of_service_url-errors"
    )
    assert await provider.get_attribute("#terms_of_service_url", "aria-invalid") == "true"
    await _shot(provider, "app-form-error")
    await provider.fill("#terms_of_service_url", "https://weather.example/tos")
    async with provider.expect_navigation():
        await provider.click("#save-app")
    assert "App created." in await provider.inner_text("#notice")
    app_id = uuid.UUID(await provider.inner_text("#app-id"))
    # The secret: hidden until revealed, with a copy button (the script is allowed by the CSP).
    assert not await provider.is_visible("#secret-value")
    await provider.click("#secret summary")
    assert await provider.is_visible("#secret-value")
    assert await provider.is_visible("#secret button.copy")
    async with AsyncSession(engine) as check:
        app = await check.get(App, app_id)
        assert app is not None and app.is_available_to_partners
        assert app.required_scopes == ["settings", "users"]
        assert await provider.inner_text("#secret-value") == app.secret

    # A webhook on the app's installations channel, pointing to the receiver on loopback.
    await provider.click("nav.appnav >> text=Webhooks")
    await provider.click("#new-webhook")
    await provider.fill("#endpoint_url", receiver.url)
    # The channel picker fills the row's pattern (free text stays possible) and shows each scope.
    installations = "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations"
    assert "(scope: users)" in await provider.inner_text("#sub-0-pick")
    await provider.select_option("#sub-0-pick", installations)
    assert await provider.input_value("#sub-0-pattern") == installations
    assert not await provider.is_visible("#sub-0-warning")
    await _shot(provider, "webhook-picker")
    async with provider.expect_navigation():
        await provider.click("#save-webhook")
    assert "Webhook created." in await provider.inner_text("#notice")
    await provider.click("nav.appnav >> text=Webhooks")
    assert receiver.url in await provider.inner_text("#webhooks")
    await _shot(provider, "webhooks")

    # The partner installs the app through the install flow, from the console's catalogue.
    installer = await signed_in_page(new_page, base + "/console/install", world.installer.user.email)
    assert "Weather Bot" in await installer.inner_text("#installable")
    await _shot(installer, "install-catalogue")
    async with installer.expect_navigation():
        await installer.click("#installable >> text=Install")
    # The same session: the install flow's confirmation page, no second sign-in.
    assert await installer.inner_text("#app-name") == "Install Weather Bot?"
    async with installer.expect_navigation():
        await installer.click("#install")
    assert installer.url == base + "/console/installed"
    assert "Weather Bot" in await installer.inner_text("#installed")
    assert "Bot Makers Oy" in await installer.inner_text("#installed")
    await _shot(installer, "installed")
    await installer.set_viewport_size({"width": 390, "height": 844})  # a phone's width
    await _shot(installer, "installed-phone")
    await installer.set_viewport_size({"width": 1200, "height": 900})

    # The delivery appears in the provider's log; its detail; Redeliver.
    await provider.goto(f"{base}/console/apps/{app_id}/deliveries")
    await _reload_until(provider, "#deliveries", "successful")
    await _shot(provider, "deliveries")
    async with provider.expect_navigation():
        await provider.click("#deliveries a.entry-link")
    assert await provider.inner_text("#entry-action") == "added"
    assert await provider.inner_text("#response-status") == "200"
    assert '"received": true' in await provider.inner_text("#response-body")
    webhook_id = await provider.inner_text("#webhook-id")
    assert [request.headers["webhook-id"] for request in receiver.requests] == [webhook_id]
    await _shot(provider, "delivery-detail")
    async with provider.expect_navigation():
        await provider.click("#redeliver")
    assert "Redelivery scheduled" in await provider.inner_text("#notice")
    assert await provider.inner_text("#attempt-number") == "2"
    await _reload_until(provider, "#entry-status", "successful")
    assert await provider.inner_text("#response-status") == "200"
    deadline = time.monotonic() + 60
    while len(receiver.requests) < 2 and time.monotonic() < deadline:
        await provider.wait_for_timeout(200)
    assert [request.headers["webhook-id"] for request in receiver.requests] == [webhook_id, webhook_id]

    # Mint an app-user token (shown once), use it, revoke it.
    await provider.click("nav.appnav >> text=Installations")
    assert "Shop Inc" in await provider.inner_text("#installations")
    async with provider.expect_navigation():
        await provider.click("#installations >> text=Shop Inc")
    async with provider.expect_navigation():
        await provider.click("#mint-token")
    key = await provider.inner_text("#new-token-value")
    await _shot(provider, "installation-token")
    async with httpx.AsyncClient(base_url=base) as api:
        as_app_user = {"Authorization": f"Token {key}"}
        works = await api.get(f"/api/v5/orgs/{world.installer.org_id}/app_installations", headers=as_app_user)
        assert works.status_code == 200
        await provider.goto(provider.url.removesuffix("/tokens"))  # a GET of the page (no resubmission)
        assert key not in await provider.content()  # shown once
        async with provider.expect_navigation():
            await provider.click("#tokens button.revoke")
        assert "Token revoked" in await provider.inner_text("#notice")
        assert await provider.is_visible("#no-tokens")
        refused = await api.get(
            f"/api/v5/orgs/{world.installer.org_id}/app_installations", headers=as_app_user
        )
        assert refused.status_code == 401

    # The chart of the app's day, with the attempts.
    await provider.click("nav.appnav >> text=Overview")
    assert "successful" in await provider.inner_text("#chart-summary")
    await _shot(provider, "app-overview")
    await provider.goto(base + "/console/apps")
    await _shot(provider, "apps")

    # The installing organization uninstalls.
    await installer.goto(base + "/console/installed")
    async with installer.expect_navigation():
        await installer.click("#installed button.uninstall")
    assert "App uninstalled" in await installer.inner_text("#notice")
    assert await installer.is_visible("#nothing-installed")
    async with AsyncSession(engine) as check:
        left = await check.scalar(select(AppInstallation.id).where(AppInstallation.app_id == app_id))
        assert left is None


async def test_a_delivery_in_chromium_shows_its_request_and_next_attempt(
    live_server: str, world: _World, engine: AsyncEngine, new_page: NewPage
) -> None:
    """The list updates a pending row by itself; a delivery shows the headers and body it sent, and
    when its retry is due."""
    plan = {0: Reply(500, hang=True)}
    with (
        receivers(lambda n: plan.get(n, Reply())) as (receiver,),
        worker(APPS_API_WEBHOOK_RETRY_SCHEDULE="3600"),
    ):
        async with AsyncSession(engine, expire_on_commit=False) as setup, unit_of_work(setup):
            app = await make_app(
                setup,
                world.provider.organization,
                is_available_to_anyone=True,
                is_approved=True,
                is_app_user_required=True,
                app_user_default_first_name="Weather",
                app_user_default_last_name="Bot",
            )
            data = WebhookCreate.model_validate(
                {
                    "endpoint_url": receiver.url,
                    "channel_subscriptions": [
                        {
                            "channel_pattern": INSTALLATIONS_PATTERN,
                            "is_additions_subscribed": True,
                            "is_changes_subscribed": False,
                            "is_removals_subscribed": False,
                        }
                    ],
                }
            )
            await webhooks_service.create_webhook(
                session=setup, app=app, actor=world.provider.user, data=data
            )
        async with AsyncSession(engine, expire_on_commit=False) as setup, unit_of_work(setup):
            await install_app(
                granter=None,
                session=setup,
                organization=world.installer.organization,
                app=app,
                actor=world.installer.user,
                allowed_scopes=[],
            )
        page = await signed_in_page(
            new_page, f"{live_server}/console/apps/{app.id}/deliveries", world.provider.user.email
        )
        # The attempt is in flight (the receiver holds it); then it fails, and the row
        # changes without a reload (console.js re-reads the page).
        await _reload_until(page, "#deliveries", "started")
        receiver.release.set()
        await page.wait_for_selector('#deliveries tr[data-status="failed"]', timeout=30_000)
        assert "next" in await page.inner_text('#deliveries tr[data-status="pending"] .next-attempt')
        await _shot(page, "deliveries-live")

        link = await page.get_attribute('#deliveries tr[data-status="failed"] a.entry-link', "href")
        assert link is not None
        await page.goto(live_server + link)
        (sent,) = receiver.requests
        headers = await page.inner_text("#request-headers")
        for name in (
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "content-type",
            "user-agent",
        ):
            assert name in headers and sent.headers[name] in headers
        token = json.loads(sent.body)["app_user_auth"]["access_token"]
        shown = await page.inner_text("#request-body")
        assert shown.encode() == sent.body.replace(token.encode(), b"[redacted]")
        assert await page.is_visible("#entry-started time")
        await _shot(page, "delivery-request")

        # The retry waits an hour: its page says when it is due.
        async with page.expect_navigation():
            await page.click("#attempts tbody tr:nth-child(2) td a")
        due = await page.get_attribute("#next-attempt time", "datetime")
        assert due is not None
        wait = datetime.fromisoformat(due) - datetime.now(UTC)
        assert timedelta(minutes=50) < wait < timedelta(minutes=70)
        assert "Not sent yet." in await page.inner_text("#request-title + dl + h3 + p")
