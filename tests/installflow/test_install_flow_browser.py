"""The install web flow end to end in headless Chromium (Debian's package, driven by Playwright).

A real uvicorn server on 127.0.0.1 serves the app against committed data; a local HTTP
receiver plays the app's trigger_url (and a cross-origin page attempting CSRF).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.models import App, AppInstallation
from tests.fixtures.browser import BROWSER, NewPage, screenshot
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.installflow import (
    PASSWORD,
    delete_organizations,
    install_url,
    make_bot_app,
    make_installer,
    query_of,
    token_form,
)

pytestmark = [*BROWSER, pytest.mark.slow]


class _Receiver(ThreadingHTTPServer):
    requests: list[str]
    attack_html: str


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = (
            self.server.attack_html
            if self.path.startswith("/attack")
            else "<!doctype html><title>Bot setup</title><h1 id='done'>Thanks for installing</h1>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _ReceiverHandler)
    server.requests = []
    server.attack_html = ""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class _World:
    owner: Tenant
    installer: Tenant
    bot_app: App
    trigger_app: App


@pytest.fixture
async def world(engine: AsyncEngine, receiver: _Receiver) -> AsyncIterator[_World]:
    """Committed data (a browser and a server process see it), removed afterwards."""
    host, port = receiver.server_address[:2]
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        owner = await make_tenant(setup, name="Bot Makers Oy")
        installer = await make_installer(setup, name="Shop Inc")
        bot_app = await make_bot_app(setup, owner.organization, name="Helpful Bot")
        trigger_app = await make_bot_app(
            setup,
            owner.organization,
            name="Onboarding Bot",
            trigger_url=f"http://{host!s}:{port}/giosg/trigger",
            trigger_conditions=["install", "uninstall"],
        )
        await setup.commit()
    try:
        yield _World(owner=owner, installer=installer, bot_app=bot_app, trigger_app=trigger_app)
    finally:
        await delete_organizations(engine, [owner.org_id, installer.org_id])


async def _installation(engine: AsyncEngine, app: App, tenant: Tenant) -> AppInstallation | None:
    async with AsyncSession(engine) as check:
        return (
            await check.execute(
                select(AppInstallation).where(
                    AppInstallation.app_id == app.id, AppInstallation.organization_id == tenant.org_id
                )
            )
        ).scalar_one_or_none()


async def test_install_flow_in_chromium(
    live_server: str, receiver: _Receiver, world: _World, engine: AsyncEngine, new_page: NewPage
) -> None:
    base = live_server
    next_ = "/settings/apps"
    page = await new_page(viewport={"width": 900, "height": 1000})
    context = page.context

    # A foreign `next` is refused with a page, never followed.
    refused = await page.goto(base + install_url(world.bot_app.id, "//evil.example"))
    assert refused is not None and refused.status == 400
    assert page.url.startswith(base)
    assert "Invalid return address" in await page.inner_text("h1")

    # No session: the login page. A wrong password is refused on the page.
    await page.goto(base + install_url(world.bot_app.id, next_))
    assert "Log in to install an app" in await page.inner_text("h1")
    await page.fill("#email", world.installer.user.email or "")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    assert "Those credentials do not work here." in await page.inner_text("#login-error")

    await page.fill("#password", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")

    # The confirmation page: app, owner, scopes, app user form prefilled.
    assert page.url == base + install_url(world.bot_app.id, next_)
    assert await page.inner_text("#app-name") == "Install Helpful Bot?"
    assert await page.inner_text("#app-owner") == "Bot Makers Oy"
    assert "Answers your visitors' questions." in await page.inner_text("#app-description")
    scopes = await page.inner_text("#app-scopes")
    assert "settings" in scopes and "users" in scopes
    assert await page.input_value("#first_name") == "Helpful"
    assert await page.input_value("#last_name") == "Bot"
    assert await page.input_value("#alias") == "helper"
    assert "Shop Inc" in await page.inner_text("main")
    cookies = {cookie["name"]: cookie for cookie in await context.cookies(base + "/apps/")}
    session_cookie = cookies["apps_api_install_session"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Lax"
    assert session_cookie["path"] == "/apps/"
    assert session_cookie["expires"] > time.time()
    await screenshot(page, "install-confirmation")

    # CSRF: a page on another origin posts the install form with the browser's cookie.
    receiver.attack_html = (
        f"<!doctype html><form id='f' method='post' action='{base}/apps/{world.bot_app.id}/install'>"
        "<input type='hidden' name='next' value='/'><button id='go'>Win a prize</button></form>"
    )
    attacker = await context.new_page()
    await attacker.goto(f"http://127.0.0.1:{receiver.server_address[1]}/attack")
    async with attacker.expect_navigation():
        await attacker.click("#go")
    assert "Form expired" in await attacker.inner_text("h1")
    await attacker.close()
    assert await _installation(engine, world.bot_app, world.installer) is None

    # Install: the app has no install trigger, so the browser goes to `next`.
    await page.fill("#first_name", "Robo")
    async with page.expect_navigation():
        await page.click("#install")
    assert page.url == base + next_
    installation = await _installation(engine, world.bot_app, world.installer)
    assert installation is not None and installation.app_user_id is not None

    # Already installed: a clear page.
    again = await page.goto(base + install_url(world.bot_app.id, next_))
    assert again is not None and again.status == 409
    assert "Helpful Bot is already installed in Shop Inc." in await page.inner_text("main")

    # An app with the install trigger: the browser lands on its trigger_url.
    await page.goto(base + install_url(world.trigger_app.id, next_))
    assert await page.inner_text("#app-name") == "Install Onboarding Bot?"
    async with page.expect_navigation():
        await page.click("#install")
    await page.wait_for_selector("#done")
    assert page.url.startswith(f"http://127.0.0.1:{receiver.server_address[1]}/giosg/trigger?")
    assert any(path.startswith("/giosg/trigger?") for path in receiver.requests)
    query = query_of(page.url)
    assert query["type"] == "install"
    assert query["redirect_uri"] == base + next_
    data = decode_trigger_data(query["data"], app_secret=world.trigger_app.secret)
    installed = await _installation(engine, world.trigger_app, world.installer)
    assert installed is not None
    assert data["inst_id"] == str(installed.id)
    assert data["user_id"] == str(world.installer.user.id)
    assert data["org_id"] == str(world.installer.org_id)
    assert data["app_user_id"] == str(installed.app_user_id)
    assert data["app_user_code"]
    assert query["token"]

    # Log out (a form button, no JavaScript): the install page asks to log in again.
    await page.goto(base + install_url(world.trigger_app.id, next_))
    async with page.expect_navigation():
        await page.click("text=Log out")
    assert "Log in to install an app" in await page.inner_text("h1")

    # What the app's server does next: exchange the code and call the API.
    async with httpx.AsyncClient(base_url=base) as api:
        exchanged = await api.post(
            "/identity/token", data=token_form(world.trigger_app, data["app_user_code"])
        )
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["user_id"] == str(installed.app_user_id)
        as_installer = await api.get(
            f"/api/v5/orgs/{world.installer.org_id}/app_installations",
            headers={"Authorization": f"GIOSGAPP {query['token']} {world.trigger_app.secret}"},
        )
        assert as_installer.status_code == 200
        assert {item["app_id"] for item in as_installer.json()["results"]} == {
            str(world.bot_app.id),
            str(world.trigger_app.id),
        }
