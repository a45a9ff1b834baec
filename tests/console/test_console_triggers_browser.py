"""The console's trigger buttons in headless Chromium (issue 26, C): "Open" on an installed app
reaches its trigger_url (a receiver on 127.0.0.1) with a valid `token`; "Open in dialog" loads
the same in a dialog's frame. A real uvicorn server and committed data, as in
tests/console/test_console_browser.py (the same Chromium: tests/fixtures/browser.py).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.auth.access_tokens import decode_access_token
from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.settings import Settings
from tests.fixtures.browser import BROWSER, NewPage, screenshot, signed_in_page
from tests.fixtures.installflow import install_directly, make_bot_app, make_installer
from tests.fixtures.webhooks import Receiver, Reply, cleanup

APP_PAGE = b"<!doctype html><title>Bot page</title><h1 id='bot-page'>Bot page</h1>"

pytestmark = [*BROWSER, pytest.mark.slow]


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def test_open_and_dialog_reach_the_trigger_url_with_a_valid_token(
    live_server: str, engine: AsyncEngine, settings: Settings, new_page: NewPage
) -> None:
    receiver = Receiver(lambda _: Reply(200, APP_PAGE, {"content-type": "text/html; charset=utf-8"}))
    trigger_url = receiver.url.replace("/hook", "/trigger")
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        provider = await make_installer(setup, name="Trigger Makers", features=["apps", "app_provider"])
        installer = await make_installer(setup, name="Trigger Shop")
        app = await make_bot_app(
            setup,
            provider.organization,
            name="Navigator",
            trigger_url=trigger_url,
            trigger_conditions=["setup", "manual_nav", "manual_dialog"],
            required_scopes=["settings"],
        )
        installation = await install_directly(setup, installer, app)
        await setup.commit()
    try:
        page = await signed_in_page(new_page, live_server + "/console/installed", installer.user.email)
        opened, framed = await _walk(page, live_server)
    finally:
        receiver.close()
        await cleanup(engine, [provider.org_id, installer.org_id], [app.id])

    # "Open": the browser reached the trigger_url with the install flow's parameters.
    assert opened["type"] == "manual_nav"
    claims = decode_access_token(opened["token"], secret_key=settings.secret_key)
    assert claims is not None, "the token does not verify"
    assert (claims["user_id"], claims["org_id"], claims["inst_id"]) == (
        str(installer.user.id),
        str(installer.org_id),
        str(installation.id),
    )
    assert claims["perms"] == ["settings"]
    data = decode_trigger_data(opened["data"], app_secret=app.secret)
    assert (data["user_id"], data["org_id"], data["app_id"]) == (
        str(installer.user.id),
        str(installer.org_id),
        str(app.id),
    )
    assert opened["redirect_uri"] == f"{live_server}/console/installed#installation-{installation.id}"
    # "Open in dialog": the same, framed in the console's dialog.
    assert framed["type"] == "manual_dialog"
    assert decode_access_token(framed["token"], secret_key=settings.secret_key) is not None
    triggers = [r for r in receiver.requests if urlsplit(r.path).path == "/trigger"]  # not /favicon.ico
    assert [(r.method, _query(r.path)["type"]) for r in triggers] == [
        ("GET", "manual_nav"),
        ("GET", "manual_dialog"),
    ]


async def _walk(page: Any, base: str) -> tuple[dict[str, str], dict[str, str]]:
    for button in ("Set up", "Open", "Open in dialog"):
        assert await page.get_by_role("button", name=f"{button} Navigator", exact=True).is_visible()
    await screenshot(page, "console-installed-triggers")

    async with page.expect_navigation(url=lambda url: "/trigger?" in url):
        await page.click("button.trigger-manual-nav")
    assert await page.inner_text("#bot-page") == "Bot page"
    opened = _query(page.url)

    await page.goto(base + "/console/installed")
    await page.click("button.trigger-manual-dialog")
    assert await page.is_visible("#trigger-dialog")
    frame = page.frame(name="trigger-dialog-frame")
    assert frame is not None
    deadline = time.monotonic() + 30
    while "type=manual_dialog" not in frame.url:
        assert time.monotonic() < deadline, f"the dialog's frame stayed at {frame.url}"
        await page.wait_for_timeout(100)
    await frame.wait_for_selector("#bot-page")
    await screenshot(page, "console-installed-dialog")
    assert page.url == base + "/console/installed"  # the console stayed where it was
    return opened, _query(frame.url)
