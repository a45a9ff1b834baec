"""The console fires `setup`, `manual_nav` and `manual_dialog` (issue 26, C).

An installed app with one of these conditions gets its button on the installing organization's
"Installed apps" page; the button POSTs (CSRF) and the answer is a 303 to the app's trigger_url
with what the install flow's redirect carries: type, data, token and a redirect_uri back here.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import decode_access_token
from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.settings import Settings
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.installflow import install_directly, make_bot_app, make_installer

TRIGGER_URL = "https://bot.example.com/giosg/trigger?tenant=a"


async def test_console_triggers_redirect_like_the_install_flow(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    provider = await make_installer(session, name="Maker", features=["apps", "app_provider"])
    installer = await make_installer(session, name="Shop")
    app = await make_bot_app(
        session,
        provider.organization,
        name="Opened Bot",
        trigger_url=TRIGGER_URL,
        trigger_conditions=["install", "setup", "manual_nav", "manual_dialog"],
        required_scopes=["settings"],
    )
    plain = await make_bot_app(session, provider.organization, name="Plain Bot", trigger_url=TRIGGER_URL)
    installation = await install_directly(session, installer, app)
    plain_installation = await install_directly(session, installer, plain)
    await sign_in(client, installer.user.email, next_="/console/installed")

    page = await client.get("/console/installed")
    assert page.status_code == 200
    # One button per console condition the app has; none for an app without them.
    for label in ("Set up", "Open", "Open in dialog"):
        assert f">{label}<span" in page.text
    assert page.text.count('action="/console/installed/') == 3 + 2  # three triggers, two uninstalls
    assert f"/console/installed/{plain_installation.id}/trigger" not in page.text
    assert f'id="installation-{installation.id}"' in page.text
    # The redirect after the POST and the dialog's frame go to the app's origin only.
    policy = page.headers["content-security-policy"]
    assert "form-action 'self' https://bot.example.com;" in policy
    assert "frame-src 'self' https://bot.example.com;" in policy

    token = await csrf(client, "/console/installed")
    url = f"/console/installed/{installation.id}/trigger"
    for type_ in ("setup", "manual_nav", "manual_dialog"):
        answer = await client.post(url, data={"csrf_token": token, "type": type_})
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert location.startswith("https://bot.example.com/giosg/trigger?")
        query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        assert (query["type"], query["tenant"]) == (type_, "a")
        assert query["redirect_uri"] == f"http://testserver/console/installed#installation-{installation.id}"
        data = decode_trigger_data(query["data"], app_secret=app.secret)
        assert (data["user_id"], data["org_id"], data["inst_id"]) == (
            str(installer.user.id),
            str(installer.org_id),
            str(installation.id),
        )
        assert data["app_user_id"] == str(installation.app_user_id) and data["app_user_code"]
        claims = decode_access_token(query["token"], secret_key=settings.secret_key)
        assert claims is not None
        assert (claims["user_id"], claims["org_id"], claims["perms"]) == (
            str(installer.user.id),
            str(installer.org_id),
            ["settings"],
        )

    # A form from elsewhere (no CSRF token) changes nothing and goes nowhere.
    forged = await client.post(url, data={"type": "manual_nav"})
    assert forged.status_code == 403 and "location" not in forged.headers
    # A condition the app lacks, or one the console does not fire, is refused.
    for type_ in ("uninstall", "install", "chat_start", ""):
        refused = await client.post(url, data={"csrf_token": token, "type": type_})
        assert refused.status_code == 400, (type_, refused.text)
    lacking = await client.post(
        f"/console/installed/{plain_installation.id}/trigger", data={"csrf_token": token, "type": "setup"}
    )
    assert lacking.status_code == 400
    # Another organization's installation is not found.
    client.cookies.clear()
    await sign_in(client, provider.user.email, next_="/console/installed")
    provider_token = await csrf(client, "/console/installed")
    foreign = await client.post(url, data={"csrf_token": provider_token, "type": "manual_nav"})
    assert foreign.status_code == 404
