"""The developer console's pages in process: what each page shows and that each action goes through
the API's services (checked through the API itself where it matters)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from apps_api.console import queries
from apps_api.kit.driver import SessionStatement
from apps_api.models import App, AppInstallation, AppShare, OutboundDelivery, Webhook, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.platform import service as platform
from tests.console_helpers import csrf, sign_in
from tests.factories import Tenant, make_app, make_log_entry
from tests.installflow_helpers import PASSWORD, install_directly, make_bot_app, make_installer


async def _provider(session: AsyncSession, name: str = "Bot Makers") -> Tenant:
    return await make_installer(session, name=name, features=["apps", "app_provider"])


def _location(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return response.headers["location"]


def _app_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Weather Bot",
        "description": "Tells the weather.",
        "terms_of_service_url": "https://weather.example/tos",
        "privacy_policy_url": "https://weather.example/privacy",
        "required_scopes": ["users"],
    }
    form.update(overrides)
    return form


async def test_app_create_shows_the_api_field_errors_then_creates(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    await sign_in(client, provider.user.email)
    token = await csrf(client, "/console/apps/new")

    refused = await client.post(
        "/console/apps",
        data={
            "csrf_token": token,
            **_app_form(name="  ", terms_of_service_url="ftp://x", trigger_url="nope"),
        },
    )
    assert refused.status_code == 400
    assert 'id="name-errors"' in refused.text and "This field may not be blank." in refused.text
    assert 'id="terms_of_service_url-errors"' in refused.text
    assert "Enter a valid absolute http:// or https:// URL." in refused.text
    assert 'id="trigger_url-errors"' in refused.text
    assert 'value="ftp://x"' in refused.text  # the form keeps what was typed
    # The app user's names: the API's own rule, as a field error.
    refused = await client.post(
        "/console/apps", data={"csrf_token": token, **_app_form(is_app_user_required="on")}
    )
    assert refused.status_code == 400
    assert "This field is required when is_app_user_required is true." in refused.text
    assert await session.scalar(select(App.id).where(App.owned_by_organization_id == provider.org_id)) is None

    created = _location(await client.post("/console/apps", data={"csrf_token": token, **_app_form()}))
    app_id = uuid.UUID(created.split("/")[3].split("?")[0])
    # The API sees the app the console created, with the secret the console shows behind "Reveal".
    api = await client.get(f"/api/v5/orgs/{provider.org_id}/owned_apps/{app_id}", headers=provider.headers)
    assert api.status_code == 200 and api.json()["required_scopes"] == ["users"]
    overview = await client.get(created)
    assert "App created." in overview.text
    assert '<details class="secret" id="secret">' in overview.text
    assert api.json()["secret"] in overview.text
    assert "Weather Bot" in (await client.get("/console/apps")).text


async def test_publicity_needs_app_provider_a_402_on_the_form(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    tenant = await make_installer(session, name="No Provider", features=["apps"])
    await sign_in(client, tenant.user.email)
    token = await csrf(client, "/console/apps/new")
    refused = await client.post(
        "/console/apps", data={"csrf_token": token, **_app_form(is_available_to_partners="on")}
    )
    assert refused.status_code == 402
    assert "App provider feature" in refused.text


async def test_edit_and_delete_uninstalls_everywhere(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    installer = await make_installer(session, name="Shop")
    app = await make_bot_app(session, provider.organization, name="Helper")
    await install_directly(session, installer, app)
    await sign_in(client, provider.user.email)
    token = await csrf(client)

    edit = await client.get(f"/console/apps/{app.id}/edit")
    assert edit.status_code == 200 and 'value="Helper"' in edit.text
    saved = await client.post(
        f"/console/apps/{app.id}/edit",
        data={
            "csrf_token": token,
            **_app_form(
                name="Helper 2",
                is_app_user_required="on",
                app_user_default_first_name="Helpful",
                app_user_default_last_name="Bot",
                is_available_to_anyone="on",
            ),
        },
    )
    assert _location(saved) == f"/console/apps/{app.id}?notice=app-saved"
    api = await client.get(f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}", headers=provider.headers)
    assert api.json()["name"] == "Helper 2"

    confirm = await client.get(f"/console/apps/{app.id}/delete")
    assert "uninstalls it everywhere" in confirm.text
    assert "1 installation" in confirm.text
    deleted = await client.post(f"/console/apps/{app.id}/delete", data={"csrf_token": token})
    assert _location(deleted) == "/console/apps?notice=app-deleted"
    assert await session.get(App, app.id, populate_existing=True) is None
    gone = await client.get(f"/api/v5/orgs/{installer.org_id}/app_installations", headers=installer.headers)
    assert gone.json()["results"] == []


async def test_webhook_rows_create_edit_and_errors(client: httpx.AsyncClient, session: AsyncSession) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    await sign_in(client, provider.user.email)
    token = await csrf(client)
    pattern = "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations"

    refused = await client.post(
        f"/console/apps/{app.id}/webhooks",
        data={
            "csrf_token": token,
            "endpoint_url": "https://user:pw@hooks.example/x",
            "sub-0-pattern": "/not/a/channel",
            "sub-0-added": "on",
        },
    )
    assert refused.status_code == 400
    assert 'id="endpoint_url-errors"' in refused.text and "Must not contain credentials." in refused.text
    assert 'id="channel_subscriptions.0-errors"' in refused.text

    created = await client.post(
        f"/console/apps/{app.id}/webhooks",
        data={
            "csrf_token": token,
            "endpoint_url": "https://hooks.example/x",
            "sub-0-pattern": pattern,
            "sub-0-added": "on",
            "sub-1-pattern": "",  # an empty row is no subscription
            "sub-2-pattern": "/api/v5/orgs/{organization_id}/chats",
            "sub-2-removed": "on",
        },
    )
    location = _location(created)
    webhook_id = location.split("/")[5].split("?")[0]
    api = await client.get(
        f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks/{webhook_id}", headers=provider.headers
    )
    assert api.json()["channel_subscriptions"] == [
        {
            "channel_pattern": pattern,
            "is_additions_subscribed": True,
            "is_changes_subscribed": False,
            "is_removals_subscribed": False,
        },
        {
            "channel_pattern": "/api/v5/orgs/{organization_id}/chats",
            "is_additions_subscribed": False,
            "is_changes_subscribed": False,
            "is_removals_subscribed": True,
        },
    ]
    listed = await client.get(f"/console/apps/{app.id}/webhooks")
    assert "https://hooks.example/x" in listed.text and "/api/v5/orgs/{organization_id}/chats" in listed.text

    duplicate = await client.post(
        location.split("?")[0],
        data={
            "csrf_token": token,
            "endpoint_url": "https://hooks.example/y",
            "sub-0-pattern": pattern,
            "sub-1-pattern": pattern,
        },
    )
    assert duplicate.status_code == 400 and "Duplicate channel_pattern" in duplicate.text
    saved = await client.post(
        location.split("?")[0],
        data={
            "csrf_token": token,
            "endpoint_url": "https://hooks.example/y",
            "sub-0-pattern": pattern,
            "sub-0-changed": "on",
        },
    )
    _location(saved)
    webhook = await session.get(Webhook, uuid.UUID(webhook_id), populate_existing=True)
    assert webhook is not None and webhook.endpoint_url == "https://hooks.example/y"
    deleted = await client.post(
        f"/console/apps/{app.id}/webhooks/{webhook_id}/delete", data={"csrf_token": token}
    )
    assert _location(deleted).startswith(f"/console/apps/{app.id}/webhooks")


async def test_deliveries_filtered_paginated_detail_and_redeliver(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    entries = []
    for index in range(30):
        entry = await make_log_entry(
            session,
            app_id=app.id,
            organization_id=provider.org_id,
            resource_id=f"r{index}",
            status="failed" if index % 3 == 0 else "successful",
            completed_at=utcnow(),
            response_headers={"content-type": "text/plain"},
            response_body=f"body {index}",
        )
        entries.append(entry)
    await sign_in(client, provider.user.email)

    page = await client.get(f"/console/apps/{app.id}/deliveries")
    assert page.status_code == 200
    rows = re.findall(r'href="/console/apps/[^/]+/deliveries/([0-9a-f-]{36})" class="entry-link"', page.text)
    assert len(rows) == 25
    assert rows[0] == str(entries[-1].id)  # newest first
    next_url = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert next_url is not None
    second = await client.get(next_url.group(1).replace("&amp;", "&"))
    assert len(re.findall(r'class="entry-link"', second.text)) == 5
    assert 'rel="prev"' in second.text
    noticed = await client.get(f"/console/apps/{app.id}/deliveries", params={"notice": "redelivered"})
    noticed_next = re.search(r'href="([^"]+)" rel="next"', noticed.text)
    assert noticed_next is not None and "notice" not in noticed_next.group(1)

    failed = await client.get(f"/console/apps/{app.id}/deliveries", params={"status": "failed"})
    assert len(re.findall(r'class="entry-link"', failed.text)) == 10
    assert "✓" not in failed.text.split('id="deliveries"')[1]  # only failures
    future = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert (
        'id="no-deliveries"'
        in (await client.get(f"/console/apps/{app.id}/deliveries", params={"since": future})).text
    )
    bad = await client.get(f"/console/apps/{app.id}/deliveries", params={"since": "yesterday"})
    assert bad.status_code == 400 and 'id="since-errors"' in bad.text

    detail = await client.get(f"/console/apps/{app.id}/deliveries/{entries[0].id}")
    assert detail.status_code == 200
    delivery = await session.get(OutboundDelivery, entries[0].delivery_id)
    assert delivery is not None and delivery.message_id in detail.text
    assert "body 0" in detail.text and "content-type" in detail.text
    assert 'id="attempts"' in detail.text

    token = await csrf(client)
    redelivered = await client.post(
        f"/console/apps/{app.id}/deliveries/{entries[0].id}/redeliver", data={"csrf_token": token}
    )
    location = _location(redelivered)
    pending = (
        await session.execute(
            select(WebhookLogEntry).where(
                WebhookLogEntry.delivery_id == entries[0].delivery_id, WebhookLogEntry.status == "pending"
            )
        )
    ).scalar_one()
    assert location == f"/console/apps/{app.id}/deliveries/{pending.id}?notice=redelivered"
    both = await client.get(location)
    assert both.text.count("/deliveries/" + str(entries[0].id)) >= 1 and "pending" in both.text


async def test_chart_counts_attempts_per_hour(client: httpx.AsyncClient, session: AsyncSession) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    for index, status in enumerate(["successful", "successful", "failed"]):
        entry = await make_log_entry(
            session,
            app_id=app.id,
            organization_id=provider.org_id,
            resource_id=f"c{index}",
            status=status,
            completed_at=utcnow(),
        )
        entry.duration = 100 * (index + 1)
    await session.flush()
    await sign_in(client, provider.user.email)
    page = await client.get(f"/console/apps/{app.id}")
    assert "2 successful and 1 failed attempts" in page.text
    hour = utcnow().strftime("%H:00")
    assert f"{hour} UTC: 2 successful" in page.text
    assert f"{hour} UTC: 1 failed" in page.text
    assert 'fill="url(#hatch)"' in page.text  # failures are hatched, not only red
    assert f"{hour} UTC: p95" in page.text


async def test_installations_tokens_minted_once_revoked_and_owner_uninstall(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    installer = await make_installer(session, name="Shop")
    app = await make_bot_app(session, provider.organization, name="Helper")
    installation = await install_directly(session, installer, app)
    await sign_in(client, provider.user.email)
    token = await csrf(client)

    listed = await client.get(f"/console/apps/{app.id}/installations")
    assert "Shop" in listed.text and "Helpful Bot" in listed.text

    base = f"/console/apps/{app.id}/installations/{installation.id}"
    minted = await client.post(f"{base}/tokens", data={"csrf_token": token})
    assert minted.status_code == 200
    key = re.search(r'<code id="new-token-value">([^<]+)</code>', minted.text)
    assert key is not None
    as_app_user = {"Authorization": f"Token {key.group(1)}"}
    works = await client.get(f"/api/v5/orgs/{installer.org_id}/app_installations", headers=as_app_user)
    assert works.status_code == 200
    again = await client.get(base)
    assert key.group(1) not in again.text  # shown once
    token_id = re.search(r"tokens/([0-9a-f-]{36})/revoke", again.text)
    assert token_id is not None
    past = await client.post(f"{base}/tokens", data={"csrf_token": token, "expires_at": "2001-01-01T00:00"})
    assert past.status_code == 400 and "Must be in the future." in past.text

    revoked = await client.post(f"{base}/tokens/{token_id.group(1)}/revoke", data={"csrf_token": token})
    assert _location(revoked) == f"{base}?notice=token-revoked"
    refused = await client.get(f"/api/v5/orgs/{installer.org_id}/app_installations", headers=as_app_user)
    assert refused.status_code == 401

    uninstalled = await client.post(f"{base}/uninstall", data={"csrf_token": token})
    assert _location(uninstalled).startswith(f"/console/apps/{app.id}/installations")
    assert await session.get(AppInstallation, installation.id, populate_existing=True) is None


async def test_shares_add_and_remove(client: httpx.AsyncClient, session: AsyncSession) -> None:
    provider = await _provider(session)
    partner = await make_installer(session, name="Partner Co")
    stranger = await make_installer(session, name="Stranger")
    await platform.add_partnership(session=session, a=provider.org_id, b=partner.org_id)
    app = await make_app(session, provider.organization)
    await sign_in(client, provider.user.email)
    token = await csrf(client)
    page = await client.get(f"/console/apps/{app.id}/shares")
    assert "Partner Co" in page.text and "Stranger" not in page.text

    refused = await client.post(
        f"/console/apps/{app.id}/shares", data={"csrf_token": token, "organization_id": str(stranger.org_id)}
    )
    assert refused.status_code == 400 and "Must be a partner organization" in refused.text
    added = await client.post(
        f"/console/apps/{app.id}/shares", data={"csrf_token": token, "organization_id": str(partner.org_id)}
    )
    _location(added)
    share = (await session.execute(select(AppShare).where(AppShare.app_id == app.id))).scalar_one()
    conflict = await client.post(
        f"/console/apps/{app.id}/shares", data={"csrf_token": token, "organization_id": str(partner.org_id)}
    )
    assert conflict.status_code == 409
    removed = await client.post(
        f"/console/apps/{app.id}/shares/{share.id}/remove", data={"csrf_token": token}
    )
    _location(removed)
    assert (await session.execute(select(AppShare).where(AppShare.app_id == app.id))).first() is None


async def test_installing_side_lists_uninstalls_and_links_to_the_install_flow(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session, name="Maker")
    installer = await make_installer(session, name="Shop")
    installed_app = await make_bot_app(session, provider.organization, name="Installed Bot")
    other_app = await make_bot_app(session, provider.organization, name="Other Bot")
    installation = await install_directly(session, installer, installed_app)
    await sign_in(client, installer.user.email)
    page = await client.get("/console/installed")
    assert "Installed Bot" in page.text and "Maker" in page.text and "Helpful Bot" in page.text
    catalogue = await client.get("/console/install", params={"source": "public"})
    assert f'href="/apps/{other_app.id}/install?next=/console/installed"' in catalogue.text
    assert f'href="/apps/{installed_app.id}/install' not in catalogue.text

    token = await csrf(client, "/console/installed")
    done = await client.post(f"/console/installed/{installation.id}/uninstall", data={"csrf_token": token})
    assert _location(done) == "/console/installed?notice=uninstalled"
    assert await session.get(AppInstallation, installation.id, populate_existing=True) is None


async def test_pages_carry_the_install_flows_headers_and_share_its_session(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    await sign_in(client, provider.user.email)
    page = await client.get("/console/apps")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<title>Your apps" not in page.text and "<title>Apps · giosg Apps console</title>" in page.text
    cookies = [cookie for cookie in client.cookies.jar if cookie.name == "apps_api_install_session"]
    assert sorted(cookie.path for cookie in cookies) == ["/apps/", "/console/"]
    assert all(cookie.has_nonstandard_attr("HttpOnly") for cookie in cookies)
    # The install flow knows the same sign-in.
    app = await make_bot_app(session, provider.organization)
    install_page = await client.get(f"/apps/{app.id}/install", params={"next": "/console/installed"})
    assert "Install " in install_page.text and "Log in to install" not in install_page.text
    # Signing out ends both.
    await client.post("/console/logout", data={"csrf_token": await csrf(client)})
    assert "Sign in to the developer console" in (await client.get("/console/apps")).text
    assert (
        "Log in to install an app"
        in (await client.get(f"/apps/{app.id}/install", params={"next": "/console/installed"})).text
    )


@asynccontextmanager
async def _statements(
    connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[str]]:
    """Every statement the requests run: through SQLAlchemy on the test's connection (all request
    sessions nest in it), and the compiled statements sent straight to the driver."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    original = SessionStatement.fetch

    async def fetch(self: SessionStatement, session: AsyncSession, **values: Any) -> Any:
        seen.append(self.sql)
        return await original(self, session, **values)

    event.listen(connection.sync_connection, "before_cursor_execute", on_execute)
    monkeypatch.setattr(SessionStatement, "fetch", fetch)
    try:
        yield seen
    finally:
        monkeypatch.setattr(SessionStatement, "fetch", original)
        event.remove(connection.sync_connection, "before_cursor_execute", on_execute)


async def test_list_pages_run_a_bounded_number_of_queries(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = await _provider(session)
    app = await make_bot_app(session, provider.organization)
    await sign_in(client, provider.user.email)
    pages: list[Callable[[], str]] = [
        lambda: "/console/apps",
        lambda: f"/console/apps/{app.id}",
        lambda: f"/console/apps/{app.id}/installations",
        lambda: f"/console/apps/{app.id}/deliveries",
        lambda: f"/console/apps/{app.id}/webhooks",
    ]

    async def grow(count: int) -> None:
        for _ in range(count):
            installer = await make_installer(session, name="Shop")
            installation = await install_directly(session, installer, app)
            await make_log_entry(
                session,
                app_id=app.id,
                organization_id=provider.org_id,
                resource_id=str(installation.id),
                completed_at=utcnow(),
            )
            await make_app(session, provider.organization)
            session.add(
                Webhook(app_id=app.id, organization_id=provider.org_id, endpoint_url="https://h.example/x")
            )
        await session.flush()

    async def counts() -> list[int]:
        result = []
        for page in pages:
            async with _statements(connection, monkeypatch) as seen:
                response = await client.get(page())
                assert response.status_code == 200, response.text
            result.append(len(seen))
        return result

    await grow(2)
    few = await counts()
    assert all(count > 0 for count in few), few
    await grow(10)
    assert await counts() == few


async def test_a_failure_is_an_html_page_too(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    await sign_in(client, provider.user.email)

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(queries, "hourly_attempts", broken)
    response = await client.get(f"/console/apps/{app.id}")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text and "boom" not in response.text


async def test_console_sign_in_is_throttled_like_the_install_flow(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Five wrong passwords lock the account: the right one is refused too (429, Retry-After)."""
    provider = await _provider(session, name="Locked Out")
    for _ in range(5):
        token = await csrf(client, "/console/login")
        wrong = await client.post(
            "/console/login",
            data={
                "csrf_token": token,
                "email": provider.user.email,
                "password": "not it",
                "next": "/console/apps",
            },
        )
        assert wrong.status_code in (400, 429), wrong.text
    token = await csrf(client, "/console/login")
    right = await client.post(
        "/console/login",
        data={
            "csrf_token": token,
            "email": provider.user.email,
            "password": PASSWORD,
            "next": "/console/apps",
        },
    )
    assert right.status_code == 429, right.text
    assert int(right.headers["retry-after"]) > 0
    assert "Sign in to the developer console" in (await client.get("/console/apps")).text


async def test_console_sign_out_ends_a_saved_copy_of_the_session_too(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session, name="Saved Cookie")
    await sign_in(client, provider.user.email)
    saved = {cookie.name: cookie.value for cookie in client.cookies.jar if cookie.path == "/console/"}
    await client.post("/console/logout", data={"csrf_token": await csrf(client)})
    client.cookies.clear()
    for name, value in saved.items():
        client.cookies.set(name, value, path="/console/")
    assert "Sign in to the developer console" in (await client.get("/console/apps")).text


async def test_rotate_the_secret_with_a_grace_period(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The rotate form calls the API's rotation: a new secret, the previous kept for the grace period."""
    provider = await _provider(session, name="Rotator")
    app = await make_app(session, provider.organization)
    old_secret = app.secret
    await sign_in(client, provider.user.email)
    token = await csrf(client, f"/console/apps/{app.id}")
    rotated = await client.post(
        f"/console/apps/{app.id}/secret/rotate", data={"csrf_token": token, "grace_period_seconds": "3600"}
    )
    location = _location(rotated)
    assert location.startswith(f"/console/apps/{app.id}")
    page = await client.get(location)
    assert "Secret rotated" in page.text
    via_api = await client.get(
        f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}", headers=provider.headers
    )
    new_secret = via_api.json()["secret"]
    assert new_secret != old_secret and new_secret in page.text
    await session.refresh(app)
    assert app.previous_secret_expires_at is not None
    refused = await client.post(f"/console/apps/{app.id}/secret/rotate", data={"grace_period_seconds": "0"})
    assert refused.status_code == 403
