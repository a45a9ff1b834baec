"""The GET routes of webhooks, log entries and the channel catalogue read compiled rows on a read
connection: each answer must be byte for byte what the response model makes of the ORM object
(the routes that write still answer through the model)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import Asset
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from apps_api.webhooks import repository, schemas
from tests.fixtures.factories import Tenant, make_app, make_log_entry


def _model_bytes(model: BaseModel) -> bytes:
    # What FastAPI writes for a response model (its fast path: pydantic's own JSON).
    return model.model_dump_json(by_alias=True).encode()


async def _webhook_model(session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID) -> bytes:
    session.expire_all()  # the requests wrote in sessions of their own
    webhook = await repository.get_webhook(session=session, app_id=app_id, webhook_id=webhook_id)
    assert webhook is not None
    return _model_bytes(schemas.Webhook.model_validate(webhook))


async def test_webhook_retrieved_as_the_model(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    icon = Asset(organization_id=tenant.org_id, url="https://cdn.example.com/ikon-ä.png", size=1, width=2)
    session.add(icon)
    tenant.user.first_name, tenant.user.last_name = 'Zoë \u2028 "quoted" \\ <tag>', None
    await session.flush()
    app = await make_app(session, tenant.organization, name="Äpp \U0001f600 \t tab", icon_asset_id=icon.id)
    hooks = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    subscriptions = [
        {
            "channel_pattern": f"/api/v5/orgs/{{organization_id}}/chats/{index}",
            "is_additions_subscribed": index % 2 == 0,
            "is_changes_subscribed": True,
            "is_removals_subscribed": False,
        }
        for index in (3, 1, 2)
    ]
    for body in (
        {"endpoint_url": "https://example.com/ä/0"},
        {"endpoint_url": "https://example.com/ä/1", "channel_subscriptions": subscriptions},
    ):
        created = await client.post(hooks, json=body, headers=tenant.headers)
        assert created.status_code == 201, created.text
        url = f"{hooks}/{created.json()['id']}"
        retrieved = await client.get(url, headers=tenant.headers)
        assert retrieved.status_code == 200, retrieved.text
        assert retrieved.headers["content-type"] == "application/json"
        assert retrieved.content == created.content  # the create answers through the model
        assert retrieved.content == await _webhook_model(session, app.id, uuid.UUID(created.json()["id"]))

        # Disabled: the health attributes set, still the model's bytes.
        disabled = await client.patch(url, json={"is_disabled": True}, headers=tenant.headers)
        assert disabled.status_code == 200, disabled.text
        retrieved = await client.get(url, headers=tenant.headers)
        assert retrieved.json()["is_disabled"] is True and retrieved.json()["disabled_at"] is not None
        assert retrieved.content == disabled.content
        assert retrieved.content == await _webhook_model(session, app.id, uuid.UUID(created.json()["id"]))
    assert [s["channel_pattern"][-1] for s in retrieved.json()["channel_subscriptions"]] == ["3", "1", "2"]


async def test_log_entry_retrieved_as_the_model(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    base = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}"
    created = await client.post(
        f"{base}/webhooks", json={"endpoint_url": "https://example.com/hook"}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    # A test notification answers with its pending entry through the model (next_attempt_at set).
    tested = await client.post(f"{base}/webhooks/{created.json()['id']}/test", headers=tenant.headers)
    assert tested.status_code == 202, tested.text
    assert tested.json()["next_attempt_at"] is not None
    retrieved = await client.get(f"{base}/webhook_log_entries/{tested.json()['id']}", headers=tenant.headers)
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.headers["content-type"] == "application/json"
    assert retrieved.content == tested.content

    # Completed entries with headers (JSONB), a body with a control character, and none.
    entry_ids = [
        (
            await make_log_entry(
                session,
                app_id=app.id,
                organization_id=tenant.org_id,
                resource_id=f"r{number}",
                completed_at=utcnow(),
                response_headers=headers,
                response_body=body,
            )
        ).id
        for number, (headers, body) in enumerate(
            (({"content-type": "text/plain", "x-ünï": "ç\n"}, "bödy \x01"), (None, None))
        )
    ]
    await session.flush()
    since = repository.kept_since(retention_days=7)
    app_id = app.id
    for entry_id in entry_ids:
        retrieved = await client.get(f"{base}/webhook_log_entries/{entry_id}", headers=tenant.headers)
        assert retrieved.status_code == 200, retrieved.text
        session.expire_all()
        loaded = await repository.get_log_entry(
            session=session, app_id=app_id, entry_id=entry_id, since=since
        )
        assert loaded is not None
        assert retrieved.content == _model_bytes(schemas.WebhookLogEntry.model_validate(loaded))


async def test_foreign_and_missing_resources_are_404(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    """The read loaders: the app's 404 first, then the webhook's or entry's."""
    app = await make_app(session, tenant.organization)
    base = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}"
    created = await client.post(
        f"{base}/webhooks", json={"endpoint_url": "https://example.com/hook"}, headers=tenant.headers
    )
    entry = await make_log_entry(session, app_id=app.id, organization_id=tenant.org_id, resource_id="r")
    await session.flush()
    foreign = f"/api/v5/orgs/{other_tenant.org_id}/owned_apps/{app.id}"
    for path in (f"/webhooks/{created.json()['id']}", f"/webhook_log_entries/{entry.id}"):
        # Another organization's app, asked for under its own organization: the app is not theirs.
        answer = await client.get(foreign + path, headers=other_tenant.headers)
        assert answer.status_code == 404, answer.text
        assert answer.json()["detail"] == "No owned app found with the given ID."
    missing: dict[str, Any] = {
        f"/webhooks/{uuid.uuid4()}": "No webhook found with the given ID.",
        f"/webhook_log_entries/{uuid.uuid4()}": "No webhook log entry found with the given ID.",
    }
    for path, detail in missing.items():
        answer = await client.get(base + path, headers=tenant.headers)
        assert answer.status_code == 404 and answer.json()["detail"] == detail


async def test_registered_channel_listed_as_registered(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    """The catalogue's rows read on the read connection make the same view as the registration's."""
    registration = {
        "pattern": "/api/v5/orgs/{organization_id}/chats",
        "scope": "reports",
        "actions": ["added", "changed"],
        "description": "Chats ä.",
        "resource_schema": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["id"],
        },
        "example_resource": {"id": "c1", "n": 12345678901234567890},
    }
    registered = await client.post(
        "/internal/v1/webhook_channels",
        json=registration,
        headers={"Authorization": f"Bearer {settings.ingest_service_key}"},
    )
    assert registered.status_code == 200, registered.text
    listed = await client.get("/api/v5/webhook_channels?page_size=1", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["results"] == [registered.json()]
