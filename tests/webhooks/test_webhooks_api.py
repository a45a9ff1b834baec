"""Webhook CRUD, validation, events of webhook changes, log entries, redelivery and ingestion."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.outbox import build_delivery
from apps_api.models import Event, OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant, make_app

WEBHOOK_ATTRIBUTES = {
    # Endpoint care (issue 15): disabling and health, read-only.
    "is_disabled",
    "disabled_at",
    "disabled_reason",
    "last_success_at",
    "last_failure_at",
    "delivery_stats",
    "id",
    "organization_id",
    "organization",
    "app_id",
    "app",
    "endpoint_url",
    "channel_subscriptions",
    "created_at",
    "updated_at",
    "created_by_user_id",
    "created_by_user",
    "updated_by_user_id",
    "updated_by_user",
}
LOG_ENTRY_ATTRIBUTES = {
    "id",
    "created_at",
    "app_id",
    "organization_id",
    "webhook_id",
    "endpoint_url",
    "action",
    "resource_id",
    "channel",
    "status",
    "retry_index",
    "reason",
    "response_status_code",
    "response_body",
    "response_headers",
    "duration",
    "started_at",
    "completed_at",
    "next_attempt_at",
    "request_headers",
    "request_body",
}


def subscription(
    pattern: str, added: bool = True, changed: bool = True, removed: bool = True
) -> dict[str, Any]:
    return {
        "channel_pattern": pattern,
        "is_additions_subscribed": added,
        "is_changes_subscribed": changed,
        "is_removals_subscribed": removed,
    }


def webhooks_url(tenant: Tenant, app_id: uuid.UUID) -> str:
    return f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app_id}/webhooks"


async def test_create_get_list_update_delete_webhook(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization, name="Bot")
    url = webhooks_url(tenant, app.id)
    payload = {
        "endpoint_url": "https://hooks.example.com/giosg",
        "channel_subscriptions": [
            subscription("/api/v5/orgs/{organization_id}/chats", removed=False),
            subscription("/api/v5/users/{user_id}/chats/*/messages", changed=False),
        ],
        "id": str(uuid.uuid4()),  # read-only: ignored
    }

    created = await client.post(url, json=payload, headers=tenant.headers)

    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == WEBHOOK_ATTRIBUTES
    assert body["id"] != payload["id"]
    assert body["organization_id"] == str(tenant.org_id)
    assert body["organization"] == {"id": str(tenant.org_id), "name": "Acme"}
    assert body["app_id"] == str(app.id)
    assert body["app"]["id"] == str(app.id) and body["app"]["name"] == "Bot"
    assert "secret" not in body["app"]
    assert body["endpoint_url"] == "https://hooks.example.com/giosg"
    assert body["channel_subscriptions"] == payload["channel_subscriptions"]
    assert body["created_by_user_id"] == str(tenant.user.id)
    assert body["created_by_user"]["id"] == str(tenant.user.id)
    assert body["updated_by_user"]["full_name"] == "Test User"
    webhook_id = body["id"]

    fetched = await client.get(f"{url}/{webhook_id}", headers=tenant.headers)
    assert fetched.status_code == 200 and fetched.json() == body

    listed = await client.get(url, headers=tenant.headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["results"]] == [webhook_id]

    patched = await client.patch(
        f"{url}/{webhook_id}", json={"endpoint_url": "https://hooks.example.com/v2"}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["endpoint_url"] == "https://hooks.example.com/v2"
    assert patched.json()["channel_subscriptions"] == payload["channel_subscriptions"]

    # PUT replaces: omitted subscriptions become an empty list; a client may PUT back a GET.
    replaced_body = {
        **patched.json(),
        "channel_subscriptions": [subscription("/api/v5/orgs/{organization_id}/users")],
    }
    replaced = await client.put(f"{url}/{webhook_id}", json=replaced_body, headers=tenant.headers)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["channel_subscriptions"] == [subscription("/api/v5/orgs/{organization_id}/users")]
    put_minimal = await client.put(
        f"{url}/{webhook_id}", json={"endpoint_url": "https://hooks.example.com/v3"}, headers=tenant.headers
    )
    assert put_minimal.status_code == 200
    assert put_minimal.json()["channel_subscriptions"] == []

    deleted = await client.delete(f"{url}/{webhook_id}", headers=tenant.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await client.get(f"{url}/{webhook_id}", headers=tenant.headers)
    assert gone.status_code == 404

    events = (
        await session.execute(
            select(Event.action, Event.channel, Event.resource_id, Event.resource)
            .where(Event.organization_id == tenant.org_id)
            .order_by(Event.id)
        )
    ).all()
    channel = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    assert [(action, ch, rid) for action, ch, rid, _ in events] == [
        ("added", channel, webhook_id),
        ("changed", channel, webhook_id),
        ("changed", channel, webhook_id),
        ("changed", channel, webhook_id),
        ("removed", channel, webhook_id),
    ]
    assert events[0].resource["endpoint_url"] == "https://hooks.example.com/giosg"
    # `changed` carries the changed attributes only.
    assert events[1].resource["endpoint_url"] == "https://hooks.example.com/v2"
    assert "channel_subscriptions" not in events[1].resource
    assert "organization" not in events[1].resource


async def test_webhook_validation_is_400_per_field(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    url = webhooks_url(tenant, app.id)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "endpoint_url"),
        ({"endpoint_url": "ftp://example.com/x"}, "endpoint_url"),
        ({"endpoint_url": "/relative/path"}, "endpoint_url"),
        ({"endpoint_url": "https://"}, "endpoint_url"),
        ({"endpoint_url": "https://user:pw@example.com/"}, "endpoint_url"),
        ({"endpoint_url": "https://example.com/" + "a" * 2000}, "endpoint_url"),
        ({"endpoint_url": None}, "endpoint_url"),
    ]
    bad_patterns = [
        "/api/v5/chats",
        "/api/v5/orgs/{organization_id}",
        "/api/v5/orgs/{organization_id}/",
        "/api/v5/orgs/*/chats",
        "/api/v5/orgs/{organization_id}/chats/",
        "/api/v5/orgs/{organization_id}//chats",
        "/api/v5/orgs/{organization_id}/chats/**",
        "/api/v5/orgs/{organization_id}/{chat_id}",
        "/api/v5/orgs/{organization_id}/ch ats",
        "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations/*",
        "/api/v5/orgs/{app_organization_id}/owned_apps",
        "/api/v5/orgs/{organization_id}/" + "a" * 470,  # 501 characters
    ]
    for pattern in bad_patterns:
        cases.append(
            (
                {"endpoint_url": "https://example.com/h", "channel_subscriptions": [subscription(pattern)]},
                "channel_subscriptions.0.channel_pattern",
            )
        )
    missing_flag = subscription("/api/v5/orgs/{organization_id}/chats")
    del missing_flag["is_changes_subscribed"]
    cases.append(
        (
            {"endpoint_url": "https://example.com/h", "channel_subscriptions": [missing_flag]},
            "channel_subscriptions.0.is_changes_subscribed",
        )
    )
    not_bool = {**subscription("/api/v5/orgs/{organization_id}/chats"), "is_removals_subscribed": "yes"}
    cases.append(
        (
            {"endpoint_url": "https://example.com/h", "channel_subscriptions": [not_bool]},
            "channel_subscriptions.0.is_removals_subscribed",
        )
    )
    duplicate = [subscription("/api/v5/orgs/{organization_id}/chats")] * 2
    cases.append(
        (
            {"endpoint_url": "https://example.com/h", "channel_subscriptions": duplicate},
            "channel_subscriptions",
        )
    )
    too_many = [subscription(f"/api/v5/orgs/{{organization_id}}/c{i}") for i in range(101)]
    cases.append(
        (
            {"endpoint_url": "https://example.com/h", "channel_subscriptions": too_many},
            "channel_subscriptions",
        )
    )

    for payload, field in cases:
        response = await client.post(url, json=payload, headers=tenant.headers)
        assert response.status_code == 400, (payload, response.text)
        assert field in response.json()["errors"], (payload, response.json())

    good = [
        "/api/v5/orgs/{organization_id}/chats",
        "/api/v5/orgs/{organization_id}/*/messages",
        "/api/v5/users/{user_id}/chats/*",
        "/api/v5/orgs/{organization_id}/owned_apps/{app_id}/webhooks",
        "/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations",
        "/api/v5/orgs/{organization_id}/" + "a" * 469,  # 500 characters, the longest
    ]
    hundred = [subscription(f"/api/v5/orgs/{{organization_id}}/c{i}") for i in range(100 - len(good))]
    response = await client.post(
        url,
        json={
            "endpoint_url": "http://example.com:8080/h?x=1",
            "channel_subscriptions": [*map(subscription, good), *hundred],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["channel_subscriptions"]) == 100

    webhook_id = response.json()["id"]
    patched = await client.patch(
        f"{url}/{webhook_id}", json={"channel_subscriptions": None}, headers=tenant.headers
    )
    assert patched.status_code == 400 and "channel_subscriptions" in patched.json()["errors"]


async def test_webhooks_of_foreign_or_unknown_apps_are_404(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await make_app(session, other_tenant.organization)
    created = await client.post(
        webhooks_url(other_tenant, foreign.id),
        json={"endpoint_url": "https://example.com/h"},
        headers=other_tenant.headers,
    )
    assert created.status_code == 201
    webhook_id = created.json()["id"]
    mine = await make_app(session, tenant.organization)

    for method, path in [
        ("GET", webhooks_url(tenant, foreign.id)),
        ("POST", webhooks_url(tenant, foreign.id)),
        ("GET", f"{webhooks_url(tenant, foreign.id)}/{webhook_id}"),
        ("GET", f"{webhooks_url(tenant, mine.id)}/{webhook_id}"),
        ("PATCH", f"{webhooks_url(tenant, mine.id)}/{webhook_id}"),
        ("DELETE", f"{webhooks_url(tenant, mine.id)}/{webhook_id}"),
        ("GET", webhooks_url(tenant, uuid.uuid4())),
        ("GET", f"/api/v5/orgs/{tenant.org_id}/owned_apps/{foreign.id}/webhook_log_entries"),
    ]:
        response = await client.request(
            method, path, json={"endpoint_url": "https://example.com/x"}, headers=tenant.headers
        )
        assert response.status_code == 404, (method, path, response.text)

    # Another organization's path is 403, before anything is looked up.
    response = await client.get(webhooks_url(other_tenant, foreign.id), headers=tenant.headers)
    assert response.status_code == 403
    response = await client.get(webhooks_url(tenant, mine.id))
    assert response.status_code == 401


async def _delivery_with_entries(
    session: AsyncSession, app_id: uuid.UUID, owner_id: uuid.UUID, webhook_id: uuid.UUID | None, **fields: Any
) -> tuple[OutboundDelivery, WebhookLogEntry]:
    delivery, entry = build_delivery(
        kind="webhook" if webhook_id else "trigger",
        app_id=app_id,
        organization_id=owner_id,
        webhook_id=webhook_id,
        method="POST",
        endpoint_url="https://hooks.example.com/x",
        channel=f"/api/v5/orgs/{owner_id}/users",
        action="added",
        resource_id="r1",
        payload={},
        **fields,
    )
    session.add(delivery)
    await session.flush()
    session.add(entry)
    await session.flush()
    return delivery, entry


async def test_log_entries_list_filter_get_and_redeliver(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    created = await client.post(
        webhooks_url(tenant, app.id),
        json={"endpoint_url": "https://hooks.example.com/x"},
        headers=tenant.headers,
    )
    webhook_id = uuid.UUID(created.json()["id"])
    failed_delivery, failed = await _delivery_with_entries(session, app.id, tenant.org_id, webhook_id)
    failed.status, failed.reason, failed.response_status_code = "failed", "Non-2xx response: 500.", 500
    failed.response_body, failed.response_headers, failed.duration = (
        "oops",
        {"content-type": "text/plain"},
        12,
    )
    failed.completed_at = utcnow()
    failed.created_at = utcnow() - timedelta(hours=2)
    failed_delivery.status, failed_delivery.attempt_count, failed_delivery.max_attempts = "failed", 8, 8
    ok_delivery, ok = await _delivery_with_entries(session, app.id, tenant.org_id, webhook_id)
    ok.status = "successful"
    _, trigger_entry = await _delivery_with_entries(session, app.id, tenant.org_id, None)
    other_app = await make_app(session, other_tenant.organization)
    await _delivery_with_entries(session, other_app.id, other_tenant.org_id, None)
    await session.flush()
    base = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhook_log_entries"

    listed = await client.get(base, headers=tenant.headers)
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [item["id"] for item in results] == [str(trigger_entry.id), str(ok.id), str(failed.id)]
    assert all(set(item) == LOG_ENTRY_ATTRIBUTES for item in results)
    failed_view = results[2]
    assert failed_view["status"] == "failed" and failed_view["reason"] == "Non-2xx response: 500."
    assert failed_view["response_status_code"] == 500 and failed_view["response_body"] == "oops"
    assert failed_view["response_headers"] == {"content-type": "text/plain"} and failed_view["duration"] == 12
    assert failed_view["webhook_id"] == str(webhook_id) and results[0]["webhook_id"] is None

    by_status = await client.get(base, params={"status": "failed"}, headers=tenant.headers)
    assert [item["id"] for item in by_status.json()["results"]] == [str(failed.id)]
    by_webhook = await client.get(base, params={"webhook_id": str(webhook_id)}, headers=tenant.headers)
    assert {item["id"] for item in by_webhook.json()["results"]} == {str(ok.id), str(failed.id)}
    since = (utcnow() - timedelta(hours=1)).isoformat()
    recent = await client.get(base, params={"created_at_gte": since}, headers=tenant.headers)
    assert str(failed.id) not in {item["id"] for item in recent.json()["results"]}
    older = await client.get(base, params={"created_at_lte": since}, headers=tenant.headers)
    assert [item["id"] for item in older.json()["results"]] == [str(failed.id)]
    # Searching by `webhook-id`, resource, channel and action.
    ok.resource_id, ok.action = "r2", "changed"
    await session.flush()
    users = f"/api/v5/orgs/{tenant.org_id}/users"
    searches = [
        ({"message_id": failed_delivery.message_id}, [failed.id]),
        ({"message_id": "msg_" + "0" * 32}, []),
        ({"resource_id": "r2"}, [ok.id]),
        ({"action": "changed"}, [ok.id]),
        ({"channel": users, "action": "added"}, [trigger_entry.id, failed.id]),
        ({"channel": f"/api/v5/orgs/{tenant.org_id}/chats"}, []),
    ]
    for params, expected in searches:
        found = await client.get(base, params=params, headers=tenant.headers)
        assert [item["id"] for item in found.json()["results"]] == [str(i) for i in expected], params
    for params in ({"status": "weird"}, {"webhook_id": "nope"}, {"created_at_gte": "yesterday"}):
        bad = await client.get(base, params=params, headers=tenant.headers)
        assert bad.status_code == 400 and set(bad.json()["errors"]) == {f"query.{key}" for key in params}, (
            bad.text
        )

    single = await client.get(f"{base}/{failed.id}", headers=tenant.headers)
    assert single.status_code == 200 and single.json() == failed_view
    assert (await client.get(f"{base}/{uuid.uuid4()}", headers=tenant.headers)).status_code == 404

    redelivered = await client.post(f"{base}/{failed.id}/redeliver", headers=tenant.headers)
    assert redelivered.status_code == 202, redelivered.text
    pending = redelivered.json()
    assert pending["status"] == "pending" and pending["retry_index"] == 8
    assert pending["webhook_id"] == str(webhook_id) and pending["id"] != str(failed.id)
    await session.refresh(failed_delivery)
    assert failed_delivery.status == "pending" and failed_delivery.max_attempts == 9
    # While pending, the entry says when it is due: its delivery's next attempt.
    assert pending["next_attempt_at"] == failed_delivery.next_attempt_at.isoformat().replace("+00:00", "Z")
    assert pending["started_at"] is None and pending["request_headers"] is None
    listed_pending = (await client.get(base, params={"status": "pending"}, headers=tenant.headers)).json()
    newest = listed_pending["results"][0]
    assert (newest["id"], newest["next_attempt_at"]) == (pending["id"], pending["next_attempt_at"])
    assert failed_view["next_attempt_at"] is None
    assert str(failed_delivery.current_log_entry_id) == pending["id"]
    # Redelivering again while that attempt waits returns the same pending attempt.
    again = await client.post(f"{base}/{failed.id}/redeliver", headers=tenant.headers)
    assert again.status_code == 202 and again.json()["id"] == pending["id"]

    ok_delivery.status = "started"
    await session.flush()
    busy = await client.post(f"{base}/{ok.id}/redeliver", headers=tenant.headers)
    assert busy.status_code == 409


async def test_ingestion_endpoint(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    url = "/internal/v1/events"
    event = {
        "organization_id": str(tenant.org_id),
        "channel": f"/api/v5/orgs/{tenant.org_id}/chats",
        "action": "added",
        "resource_id": "chat-1",
        "resource": {"id": "chat-1", "is_private": False},
        "required_scope": "reports",
    }
    headers = {"Authorization": f"Bearer {settings.ingest_service_key}"}

    assert (await client.post(url, json={"events": [event]})).status_code == 401
    wrong = await client.post(url, json={"events": [event]}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    token_scheme = await client.post(
        url, json={"events": [event]}, headers={"Authorization": f"Token {settings.ingest_service_key}"}
    )
    assert token_scheme.status_code == 401

    accepted = await client.post(
        url, json={"events": [event, {**event, "required_scope": "users"}]}, headers=headers
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["accepted"] == 2
    rows = (
        (
            await session.execute(
                select(Event).where(Event.id.in_(accepted.json()["event_ids"])).order_by(Event.id)
            )
        )
        .scalars()
        .all()
    )
    assert [(row.channel, row.action, row.resource_id, row.required_scope) for row in rows] == [
        (event["channel"], "added", "chat-1", "reports"),
        (event["channel"], "added", "chat-1", "users"),
    ]
    assert rows[0].resource == {"id": "chat-1", "is_private": False}

    for bad, field in [
        ({"events": []}, "events"),
        ({"events": [{**event, "action": "deleted"}]}, "events.0.action"),
        ({"events": [{**event, "channel": "/api/v5/orgs/{organization_id}/chats"}]}, "events.0.channel"),
        ({"events": [{**event, "channel": "chats"}]}, "events.0.channel"),
        ({"events": [{**event, "required_scope": "admin"}]}, "events.0.required_scope"),
        # An app hears only what its installation allows: every event names its scope.
        ({"events": [{**event, "required_scope": None}]}, "events.0.required_scope"),
        ({"events": [{k: v for k, v in event.items() if k != "required_scope"}]}, "events.0.required_scope"),
        ({"events": [{**event, "organization_id": "x"}]}, "events.0.organization_id"),
        ({"events": [event] * 501}, "events"),
    ]:
        response = await client.post(url, json=bad, headers=headers)
        assert response.status_code == 400, bad
        assert field in response.json()["errors"], response.json()


async def test_ingestion_is_404_when_not_configured(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: Any
) -> None:
    monkeypatch.setattr(settings, "ingest_service_key", None)
    response = await client.post(
        "/internal/v1/events", json={"events": []}, headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 404
