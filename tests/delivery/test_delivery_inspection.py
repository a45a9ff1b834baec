"""Deliveries as inspectable as GitHub's "Recent Deliveries" (issue 26), and the log kept as promised.

- A log entry shows the request its attempt sent: the headers, and the exact body bytes with the
  app user's access token redacted; when it was sent (`started_at`) and, while pending, when the
  next attempt is due (`next_attempt_at`, from the delivery).
- The log stays readable after its webhook is deleted, and no read returns an entry older than
  the retention, whenever the purge runs.

The first test runs the real worker process against a real receiver on 127.0.0.1; the others run
in process on the test's rolled-back transaction.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.outbox import build_delivery
from apps_api.delivery.send import REDACTED
from apps_api.models import App, OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow
from tests.fixtures.console import sign_in
from tests.fixtures.delivery import CHATS, World, chat_event, deliveries_of, sub, verified
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.installflow import make_installer
from tests.fixtures.webhooks import Reply, eventually, receivers, worker

SENT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")


def log_url(owner: Tenant, app_id: uuid.UUID, tail: str = "") -> str:
    return f"/api/v5/orgs/{owner.org_id}/owned_apps/{app_id}/webhook_log_entries{tail}"


def parsed(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.subprocess
async def test_an_entry_shows_the_request_as_sent_and_when_the_next_attempt_is_due(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    # An app user: every attempt carries a freshly minted `app_user_auth` to redact.
    app = await world.app(
        provider, is_app_user_required=True, app_user_default_first_name="Bot", app_user_default_last_name="A"
    )
    plan = {0: Reply(500)}
    with (
        receivers(lambda n: plan.get(n, Reply())) as (receiver,),
        worker(APPS_API_WEBHOOK_RETRY_SCHEDULE="3600"),
    ):
        webhook_id = await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))

        async def failed_once() -> bool:
            return [(d.status, d.attempt_count) for d in await deliveries_of(engine, webhook_id)] == [
                ("pending", 1)
            ]

        await eventually(failed_once, what="the first attempt failed")
        (delivery,) = await deliveries_of(engine, webhook_id)
        listed = await api.get(
            log_url(provider, app.id), params={"webhook_id": str(webhook_id)}, headers=provider.headers
        )
        assert listed.status_code == 200, listed.text
        waiting, first = listed.json()["results"]

        # The first attempt: the headers and the very bytes the receiver got, the token cut out.
        (received,) = receiver.requests
        token = verified(receiver, app.secret)[0]["app_user_auth"]["access_token"]
        assert first["status"] == "failed" and first["next_attempt_at"] is None
        assert first["request_headers"] == {name: received.headers[name] for name in SENT_HEADERS}
        assert first["request_headers"]["webhook-id"] == delivery.message_id
        assert token not in first["request_body"] and f'"access_token":"{REDACTED}"' in first["request_body"]
        assert first["request_body"].encode() == received.body.replace(token.encode(), REDACTED.encode())
        assert parsed(first["created_at"]) <= parsed(first["started_at"]) <= parsed(first["completed_at"])
        single = await api.get(log_url(provider, app.id, f"/{first['id']}"), headers=provider.headers)
        assert single.json() == first

        # The retry waits an hour: not sent yet, due at its delivery's next attempt.
        assert waiting["status"] == "pending" and waiting["retry_index"] == 1
        assert waiting["started_at"] is None and waiting["request_headers"] is None
        assert waiting["request_body"] is None
        assert parsed(waiting["next_attempt_at"]) == delivery.next_attempt_at
        assert delivery.next_attempt_at > utcnow() + timedelta(minutes=50)
        single = await api.get(log_url(provider, app.id, f"/{waiting['id']}"), headers=provider.headers)
        assert single.json() == waiting

        # Searched by its `webhook-id`.
        found = await api.get(
            log_url(provider, app.id), params={"message_id": delivery.message_id}, headers=provider.headers
        )
        assert [e["id"] for e in found.json()["results"]] == [waiting["id"], first["id"]]

        # Redelivered now: the second attempt's own headers and body (a new timestamp and token).
        redelivered = await api.post(
            log_url(provider, app.id, f"/{waiting['id']}/redeliver"), headers=provider.headers
        )
        assert redelivered.status_code == 202, redelivered.text
        assert parsed(redelivered.json()["next_attempt_at"]) <= utcnow()
        await world.settle()
    second = (await api.get(log_url(provider, app.id, f"/{waiting['id']}"), headers=provider.headers)).json()
    assert second["status"] == "successful" and second["next_attempt_at"] is None
    again = receiver.requests[1]
    assert second["request_headers"] == {name: again.headers[name] for name in SENT_HEADERS}
    second_token = verified(receiver, app.secret)[1]["app_user_auth"]["access_token"]
    assert second["request_body"].encode() == again.body.replace(second_token.encode(), REDACTED.encode())
    assert parsed(second["started_at"]) > parsed(first["started_at"])


# --- in process -------------------------------------------------------------------------------


async def _entry(
    session: AsyncSession,
    app: App,
    *,
    webhook_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> tuple[OutboundDelivery, WebhookLogEntry]:
    """A webhook delivery and its first attempt's entry, as the pipeline writes them."""
    delivery, entry = build_delivery(
        kind="webhook",
        app_id=app.id,
        organization_id=app.owned_by_organization_id,
        webhook_id=webhook_id or uuid.uuid4(),
        method="POST",
        endpoint_url="https://hooks.example.com/x",
        channel=f"/api/v5/orgs/{app.owned_by_organization_id}/chats",
        action="added",
        resource_id="chat-1",
        payload={"channel": "c", "action": "added", "resource_id": "chat-1", "resource": {}},
    )
    session.add(delivery)
    await session.flush()
    if created_at is not None:
        entry.created_at = entry.scheduled_at = created_at
    for name, value in fields.items():
        setattr(entry, name, value)
    session.add(entry)
    await session.flush()
    return delivery, entry


# The body as the engine sends it: compact, keys in the payload's order (not sorted).
SENT_BODY = '{"resource_id":"chat-1","channel":"c","app_user_auth":{"access_token":"[redacted]"}}'
REQUEST_HEADERS = {
    "user-agent": "apps-api-webhooks/1",
    "webhook-id": "msg_" + "a" * 32,
    "webhook-timestamp": "1700000000",
    "webhook-signature": "v1,c2lnbmF0dXJl",
    "content-type": "application/json",
}


async def test_console_shows_headers_exact_body_sent_time_and_next_attempt(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_installer(session, name="Bot Makers", features=["apps", "app_provider"])
    app = await make_app(session, provider.organization)
    started = utcnow() - timedelta(minutes=3)
    delivery, sent = await _entry(
        session,
        app,
        status="failed",
        reason="Non-2xx response: 500.",
        started_at=started,
        completed_at=started,
        request_headers=REQUEST_HEADERS,
        request_body=SENT_BODY,
    )
    delivery.message_id = REQUEST_HEADERS["webhook-id"]
    due = utcnow() + timedelta(minutes=30)
    retry = WebhookLogEntry(
        **{c: getattr(sent, c) for c in ("delivery_id", "app_id", "organization_id", "webhook_id")},
        **{c: getattr(sent, c) for c in ("endpoint_url", "action", "resource_id", "channel")},
        status="pending",
        retry_index=1,
        scheduled_at=due,
    )
    session.add(retry)
    await session.flush()
    delivery.status, delivery.attempt_count, delivery.next_attempt_at = "pending", 1, due
    delivery.current_log_entry_id = retry.id
    _, other = await _entry(session, app, resource_id="order-7", action="changed", channel="/api/v5/x")
    await session.flush()
    await sign_in(client, provider.user.email)
    base = f"/console/apps/{app.id}/deliveries"

    page = await client.get(f"{base}/{sent.id}")
    assert page.status_code == 200, page.text
    headers = page.text.split('id="request-headers"')[1].split("</table>")[0]
    for name, value in REQUEST_HEADERS.items():
        assert f"<code>{name}</code>" in headers and f"<code>{value}</code>" in headers
    body = re.search(r'<pre class="code" id="request-body">([^<]*)</pre>', page.text)
    assert body is not None and body.group(1).replace("&#34;", '"') == SENT_BODY
    assert f'<dd id="entry-started"><time datetime="{started.isoformat()}">' in page.text

    waiting = await client.get(f"{base}/{retry.id}")
    assert f'<span id="next-attempt"><time datetime="{due.isoformat()}">' in waiting.text
    assert "Not sent yet." in waiting.text and "data-pending" in waiting.text

    # The list: each attempt at the time it was sent, the pending one with its due time, and it
    # asks console.js to refresh it (allowed by the console's CSP).
    listed = await client.get(base)
    assert f'<time datetime="{started.isoformat()}">' in listed.text
    assert "next-attempt" in listed.text and "data-live" in listed.text
    assert "connect-src 'self'" in listed.headers["content-security-policy"]

    def ids(response: httpx.Response) -> list[str]:
        return re.findall(
            r'href="/console/apps/[^/]+/deliveries/([0-9a-f-]{36})" class="entry-link"', response.text
        )

    searches = [
        ({"q": delivery.message_id}, [retry.id, sent.id]),
        ({"q": "order-7"}, [other.id]),
        ({"action": "changed"}, [other.id]),
        ({"channel": "/api/v5/x"}, [other.id]),
        ({"channel": "/api/v5/x", "action": "added"}, []),
    ]
    for params, expected in searches:
        found = await client.get(base, params=params)
        assert found.status_code == 200 and ids(found) == [str(i) for i in expected], params
    assert (await client.get(base, params={"action": "nope"})).status_code == 400


async def test_webhook_list_shows_a_failing_webhook_and_its_success_rate(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_installer(session, name="Bot Makers", features=["apps", "app_provider"])
    app = await make_app(session, provider.organization)
    created = await client.post(
        f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks",
        json={"endpoint_url": "https://hooks.example.com/x"},
        headers=provider.headers,
    )
    webhook_id = uuid.UUID(created.json()["id"])
    for status in ("successful", "failed", "failed", "failed"):
        await _entry(session, app, webhook_id=webhook_id, status=status, completed_at=utcnow())
    await sign_in(client, provider.user.email)
    url = f"/console/apps/{app.id}/webhooks"

    healthy = await client.get(url)
    assert "Enabled" in healthy.text and "Failing" not in healthy.text
    assert "25.0% successful in 24 h" in healthy.text

    # Its last attempts all failed (the streak the worker keeps): failing, not a green "Enabled".
    from apps_api.models import Webhook

    webhook = await session.get(Webhook, webhook_id)
    assert webhook is not None
    webhook.failing_since, webhook.failures_in_streak = utcnow() - timedelta(hours=1), 3
    await session.flush()
    failing = await client.get(url)
    row = failing.text.split(f'id="webhook-{webhook_id}"')[1]
    assert "Failing" in row and "3 failed attempts in a row" in row and "tag ok" not in row
    edit = await client.get(f"{url}/{webhook_id}")
    assert "Failing" in edit.text and 'id="success-rate">25.0% successful' in edit.text


# --- logs kept as promised ----------------------------------------------------------------------


async def test_no_read_returns_an_entry_older_than_the_retention(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Purges drop whole days when they run: an entry 8 days old may still be stored, never shown."""
    provider = await make_installer(session, name="Bot Makers", features=["apps", "app_provider"])
    app = await make_app(session, provider.organization)
    now = utcnow()
    _, old = await _entry(session, app, created_at=now - timedelta(days=8), status="failed")
    _, kept = await _entry(session, app, created_at=now - timedelta(days=6, hours=23), status="failed")
    base = log_url(provider, app.id)

    listed = await client.get(base, headers=provider.headers)
    assert [e["id"] for e in listed.json()["results"]] == [str(kept.id)]
    for params in (
        {"webhook_id": str(old.webhook_id)},
        {"created_at_lte": (now - timedelta(days=7, hours=12)).isoformat()},
    ):
        assert (await client.get(base, params=params, headers=provider.headers)).json()["results"] == []
    assert (await client.get(f"{base}/{old.id}", headers=provider.headers)).status_code == 404
    assert (await client.get(f"{base}/{kept.id}", headers=provider.headers)).status_code == 200
    assert (await client.post(f"{base}/{old.id}/redeliver", headers=provider.headers)).status_code == 404

    await sign_in(client, provider.user.email)
    console = await client.get(f"/console/apps/{app.id}/deliveries")
    assert str(kept.id) in console.text and str(old.id) not in console.text
    assert (await client.get(f"/console/apps/{app.id}/deliveries/{old.id}")).status_code == 404


async def test_a_deleted_webhooks_entries_stay_readable_by_its_id(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_installer(session, name="Bot Makers", features=["apps", "app_provider"])
    app = await make_app(session, provider.organization)
    created = await client.post(
        f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks",
        json={"endpoint_url": "https://hooks.example.com/x"},
        headers=provider.headers,
    )
    webhook_id = uuid.UUID(created.json()["id"])
    _, done = await _entry(session, app, webhook_id=webhook_id, status="successful", completed_at=utcnow())
    _, waiting = await _entry(session, app, webhook_id=webhook_id)
    deleted = await client.delete(
        f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks/{webhook_id}", headers=provider.headers
    )
    assert deleted.status_code == 204

    listed = await client.get(
        log_url(provider, app.id), params={"webhook_id": str(webhook_id)}, headers=provider.headers
    )
    assert [(e["id"], e["status"]) for e in listed.json()["results"]] == [
        (str(waiting.id), "failed"),
        (str(done.id), "successful"),
    ]
    item = await client.get(log_url(provider, app.id, f"/{done.id}"), headers=provider.headers)
    assert item.status_code == 200 and item.json()["webhook_id"] == str(webhook_id)
    assert datetime.now(UTC) - parsed(item.json()["created_at"]) < timedelta(minutes=5)
    await sign_in(client, provider.user.email)
    page = await client.get(f"/console/apps/{app.id}/deliveries/{done.id}")
    assert page.status_code == 200
