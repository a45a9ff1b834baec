"""The developer console's pages in process: what each page shows and that each action goes through
the API's services (checked through the API itself where it matters)."""

from __future__ import annotations

import html
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
from apps_api.delivery.outbox import build_delivery
from apps_api.delivery.states import AttemptStatus, DeliveryStatus
from apps_api.kit.driver import CompiledStatement
from apps_api.models import (
    App,
    AppInstallation,
    AppShare,
    Event,
    OutboundDelivery,
    Webhook,
    WebhookLogEntry,
)
from apps_api.models.base import utcnow
from apps_api.platform import service as platform
from apps_api.settings import Settings
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.factories import Tenant, make_app, make_log_entry
from tests.fixtures.installflow import PASSWORD, install_directly, make_bot_app, make_installer


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


async def _webhook(session: AsyncSession, app: App, **health: Any) -> Webhook:
    webhook = Webhook(
        app_id=app.id, organization_id=app.owned_by_organization_id, endpoint_url="https://hooks.example/x"
    )
    for name, value in health.items():
        setattr(webhook, name, value)
    session.add(webhook)
    await session.flush()
    return webhook


async def _attempt(
    session: AsyncSession,
    webhook: Webhook,
    status: str,
    *,
    completed_minutes_ago: float | None = None,
    duration: int | None = None,
) -> OutboundDelivery:
    """A delivery of the webhook with one attempt in `status`, as the engine leaves it."""
    delivery, entry = build_delivery(
        kind="webhook",
        app_id=webhook.app_id,
        organization_id=webhook.organization_id,
        webhook_id=webhook.id,
        method="POST",
        endpoint_url=webhook.endpoint_url,
        channel=f"/api/v5/orgs/{webhook.organization_id}/chats",
        action="added",
        resource_id=str(uuid.uuid4()),
        payload={},
    )
    completed_at = (
        None if completed_minutes_ago is None else utcnow() - timedelta(minutes=completed_minutes_ago)
    )
    if status != AttemptStatus.PENDING:
        delivery.status, delivery.completed_at, delivery.attempt_count = status, completed_at, 1
    session.add(delivery)
    await session.flush()
    entry.status, entry.completed_at, entry.duration = status, completed_at, duration
    session.add(entry)
    await session.flush()
    return delivery


def _api_webhook(provider: Tenant, webhook: Webhook, tail: str = "") -> str:
    return f"/api/v5/orgs/{provider.org_id}/owned_apps/{webhook.app_id}/webhooks/{webhook.id}{tail}"


async def test_webhook_health_at_a_glance_on_the_list_and_the_page(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    now = utcnow()
    healthy = await _webhook(session, app, last_success_at=now - timedelta(minutes=5))
    for status, duration in (("successful", 100), ("successful", 300), ("failed", 200), ("pending", None)):
        await _attempt(session, healthy, status, completed_minutes_ago=10, duration=duration)
    disabled = await _webhook(
        session,
        app,
        endpoint_url="https://down.example/x",
        is_disabled=True,
        disabled_at=now - timedelta(hours=1),
        disabled_reason="Every attempt failed for 5 days.",
        last_success_at=now - timedelta(days=6),
        last_failure_at=now - timedelta(hours=2),
    )
    await sign_in(client, provider.user.email)

    listed = await client.get(f"/console/apps/{app.id}/webhooks")
    assert listed.status_code == 200
    rows = {
        webhook_id: row
        for webhook_id, row in re.findall(
            r'<tr(?: class="disabled")? id="webhook-([0-9a-f-]{36})">(.*?)</tr>', listed.text, re.S
        )
    }
    assert ">Enabled<" in rows[str(healthy.id)] and "Disabled" not in rows[str(healthy.id)]
    assert "24 h: 2 successful, 1 failed, 1 pending; p50 200 ms, p95 300 ms" in rows[str(healthy.id)]
    assert f'<tr class="disabled" id="webhook-{disabled.id}">' in listed.text
    assert "Disabled</span> since" in rows[str(disabled.id)]
    assert "Every attempt failed for 5 days." in rows[str(disabled.id)]
    assert (now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S") in rows[str(disabled.id)]

    # The page shows what the API's view of the webhook says.
    page = await client.get(f"/console/apps/{app.id}/webhooks/{healthy.id}")
    api = (await client.get(_api_webhook(provider, healthy), headers=provider.headers)).json()
    stats = api["delivery_stats"]
    assert stats == {
        "successful": 2,
        "failed": 1,
        "pending": 1,
        "p50_duration_ms": 200,
        "p95_duration_ms": 300,
    }
    for name in ("successful", "failed", "pending"):
        assert f'id="stats-{name}">{stats[name]}<' in page.text
    assert 'id="stats-p50">200 ms<' in page.text and 'id="stats-p95">300 ms<' in page.text
    assert 'id="webhook-disabled"' not in page.text and 'id="last-failure">—<' in page.text
    assert 'id="send-test"' in page.text and 'id="recover"' in page.text

    page = await client.get(f"/console/apps/{app.id}/webhooks/{disabled.id}")
    assert 'id="webhook-disabled"' in page.text and 'id="enable-webhook"' in page.text
    assert 'id="disabled-reason">Every attempt failed for 5 days.<' in page.text
    assert 'id="send-test"' not in page.text and 'id="care-disabled"' in page.text
    assert 'id="stats-successful">0<' in page.text and 'id="stats-p95">—<' in page.text


async def test_re_enable_goes_through_the_apis_update(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    webhook = await _webhook(
        session,
        app,
        is_disabled=True,
        disabled_at=utcnow(),
        disabled_reason="Every attempt failed for 5 days.",
        failing_since=utcnow() - timedelta(days=5),
        failures_in_streak=12,
    )
    await sign_in(client, provider.user.email)
    token = await csrf(client)
    base = f"/console/apps/{app.id}/webhooks/{webhook.id}"

    # While disabled, a test event and recover are the API's 409, as a page with its message.
    for tail, data in (("/test", {}), ("/recover", {"since": utcnow().strftime("%Y-%m-%dT%H:%M")})):
        refused = await client.post(base + tail, data={"csrf_token": token, **data})
        assert refused.status_code == 409, (tail, refused.text)
        assert '<h1 id="error-title">Webhook disabled</h1>' in refused.text
        assert "The webhook is disabled; re-enable it first" in refused.text
    assert (
        await session.scalar(select(WebhookLogEntry.id).where(WebhookLogEntry.webhook_id == webhook.id))
        is None
    )

    enabled = await client.post(f"{base}/enable", data={"csrf_token": token})
    assert _location(enabled) == f"{base}?notice=webhook-enabled"
    await session.refresh(webhook)
    assert not webhook.is_disabled and webhook.disabled_at is None and webhook.disabled_reason is None
    assert webhook.failing_since is None and webhook.failures_in_streak == 0
    assert webhook.updated_by_user_id == provider.user.id
    changed = (
        await session.execute(
            select(Event).where(Event.resource_id == str(webhook.id), Event.action == "changed")
        )
    ).scalar_one()
    assert changed.resource["is_disabled"] is False and changed.actor_user_id == provider.user.id
    api = await client.get(_api_webhook(provider, webhook), headers=provider.headers)
    assert api.json()["is_disabled"] is False and api.json()["disabled_at"] is None
    page = await client.get(enabled.headers["location"])
    assert "Webhook re-enabled" in page.text
    assert 'id="webhook-disabled"' not in page.text and 'id="send-test"' in page.text


async def test_send_test_event_shows_its_pending_attempt(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    webhook = await _webhook(session, app)
    await sign_in(client, provider.user.email)
    token = await csrf(client)

    sent = await client.post(f"/console/apps/{app.id}/webhooks/{webhook.id}/test", data={"csrf_token": token})

    entry = (
        await session.execute(select(WebhookLogEntry).where(WebhookLogEntry.webhook_id == webhook.id))
    ).scalar_one()
    assert entry.action == "test" and entry.status == AttemptStatus.PENDING and entry.retry_index == 0
    assert _location(sent) == f"/console/apps/{app.id}/deliveries/{entry.id}?notice=test-sent"
    delivery = await session.get(OutboundDelivery, entry.delivery_id)
    assert delivery is not None and delivery.payload["action"] == "test"
    # The API's own test event schedules the same number of attempts.
    assert delivery.max_attempts == settings.max_delivery_attempts
    page = await client.get(sent.headers["location"])
    assert "Test event scheduled" in page.text
    assert 'id="entry-action">test<' in page.text and "status-pending" in page.text
    # The API lists the console's test attempt like its own.
    listed = await client.get(
        f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhook_log_entries",
        params={"webhook_id": str(webhook.id)},
        headers=provider.headers,
    )
    assert [item["id"] for item in listed.json()["results"]] == [str(entry.id)]


async def test_recover_requeues_the_failed_deliveries_since_a_time(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await _provider(session)
    app = await make_app(session, provider.organization)
    webhook = await _webhook(session, app)
    recent = [await _attempt(session, webhook, "failed", completed_minutes_ago=60) for _ in range(2)]
    older = await _attempt(session, webhook, "failed", completed_minutes_ago=180)
    succeeded = await _attempt(session, webhook, "successful", completed_minutes_ago=60)
    await sign_in(client, provider.user.email)
    token = await csrf(client)
    base = f"/console/apps/{app.id}/webhooks/{webhook.id}"

    # The API's input schema and the service's retention rule, with the API's messages.
    for since in ("yesterday", "", (utcnow() - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M")):
        refused = await client.post(f"{base}/recover", data={"csrf_token": token, "since": since})
        assert refused.status_code == 400, (since, refused.text)
        assert 'id="since-errors"' in refused.text and f'value="{since}"' in refused.text
        api = await client.post(
            _api_webhook(provider, webhook, "/recover"), json={"since": since}, headers=provider.headers
        )
        assert api.status_code == 400
        for message in api.json()["errors"]["since"]:
            assert message in html.unescape(refused.text), (since, message)
    assert "Must be at most 7 days ago (the log's retention)." in html.unescape(refused.text)
    assert await session.scalar(select(WebhookLogEntry.id).where(WebhookLogEntry.status == "pending")) is None

    since = (utcnow() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    recovered = await client.post(f"{base}/recover", data={"csrf_token": token, "since": since})
    assert _location(recovered) == f"{base}?requeued=2&notice=recovered"
    page = await client.get(recovered.headers["location"])
    assert 'id="notice"' in page.text and "2 deliveries requeued" in page.text
    for delivery in (*recent, older, succeeded):
        await session.refresh(delivery)
    assert [delivery.status for delivery in recent] == [DeliveryStatus.PENDING] * 2
    assert (older.status, succeeded.status) == (DeliveryStatus.FAILED, DeliveryStatus.SUCCESSFUL)
    pending = (
        (await session.execute(select(WebhookLogEntry).where(WebhookLogEntry.status == "pending")))
        .scalars()
        .all()
    )
    assert {entry.delivery_id for entry in pending} == {delivery.id for delivery in recent}
    assert {entry.retry_index for entry in pending} == {1}
    # A forged count in the address is no notice.
    assert 'id="notice"' not in (await client.get(f"{base}?requeued=x&notice=recovered")).text


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

    original = CompiledStatement.fetch

    async def fetch(self: CompiledStatement, session: AsyncSession, **values: Any) -> Any:
        seen.append(self.sql)
        return await original(self, session, **values)

    event.listen(connection.sync_connection, "before_cursor_execute", on_execute)
    monkeypatch.setattr(CompiledStatement, "fetch", fetch)
    try:
        yield seen
    finally:
        monkeypatch.setattr(CompiledStatement, "fetch", original)
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
