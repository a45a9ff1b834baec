"""Operator-registered channel families: registration, the catalogue's list, ingestion's checks."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.models import Event, WebhookChannel
from apps_api.settings import Settings
from tests.fixtures.cli import admin, run_cli
from tests.fixtures.factories import Tenant

CHATS = "/api/v5/orgs/{organization_id}/chats"
CHAT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "is_ended": {"type": "boolean"},
        "visitor": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
    "required": ["id", "is_ended"],
}


def _key(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.ingest_service_key}"}


async def _register(client: httpx.AsyncClient, settings: Settings, **body: Any) -> httpx.Response:
    registration = {"pattern": CHATS, "scope": "reports", "resource_schema": CHAT_SCHEMA, **body}
    return await client.post("/internal/v1/webhook_channels", json=registration, headers=_key(settings))


def _event(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    return {
        "organization_id": str(tenant.org_id),
        "channel": f"/api/v5/orgs/{tenant.org_id}/chats",
        "action": "added",
        "resource_id": "chat-1",
        "resource": {"id": "chat-1", "is_ended": False},
        "required_scope": "reports",
        **overrides,
    }


async def _ingest(client: httpx.AsyncClient, settings: Settings, *events: dict[str, Any]) -> httpx.Response:
    return await client.post("/internal/v1/events", json={"events": list(events)}, headers=_key(settings))


async def test_ingestion_checks_events_of_a_registered_family(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    # Before registration anything goes, as it always did.
    loose = _event(tenant, resource={"whatever": 1})
    assert (await _ingest(client, settings, loose)).status_code == 202

    registered = await _register(
        client,
        settings,
        description="Chats of the organization.",
        example_resource={"id": "c1", "is_ended": True},
    )
    assert registered.status_code == 200, registered.text
    assert registered.json()["source"] == "operator" and registered.json()["scope"] == "reports"
    assert registered.json()["examples"]["added"]["resource"] == {"id": "c1", "is_ended": True}

    refused = await _ingest(client, settings, _event(tenant), loose)
    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "events.1.resource.id": ["'id' is a required property"],
        "events.1.resource.is_ended": ["'is_ended' is a required property"],
    }
    wrong = await _ingest(
        client,
        settings,
        _event(
            tenant, resource={"id": "c", "is_ended": "yes", "visitor": {"name": 3}}, required_scope="users"
        ),
    )
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {
        "events.0.required_scope": [f"`{CHATS}` needs the `reports` scope."],
        "events.0.resource.is_ended": ["'yes' is not of type 'boolean'"],
        "events.0.resource.visitor.name": ["3 is not of type 'string'"],
    }
    # Nothing of a refused batch was recorded; a `changed` carries only what changed.
    assert (
        await _ingest(client, settings, _event(tenant, action="changed", resource={"is_ended": True}))
    ).status_code == 202
    assert (
        await _ingest(client, settings, _event(tenant, channel=f"/api/v5/orgs/{tenant.org_id}/visits"))
    ).status_code == 202
    rows = (await session.scalars(select(Event).where(Event.organization_id == tenant.org_id))).all()
    # In any order: the events share their transaction's timestamp, and no other column orders them.
    assert sorted((row.resource for row in rows), key=repr) == sorted(
        [{"whatever": 1}, {"is_ended": True}, {"id": "chat-1", "is_ended": False}], key=repr
    )

    # Fewer actions on re-registration (same pattern: replaced).
    again = await _register(client, settings, actions=["added"])
    assert again.status_code == 200 and again.json()["id"] == registered.json()["id"]
    removed = await _ingest(client, settings, _event(tenant, action="removed"))
    assert removed.json()["errors"] == {"events.0.action": [f"`{CHATS}` has the actions added."]}


async def test_registered_families_are_listed(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    assert (await _register(client, settings)).status_code == 200
    listed = await client.get("/api/v5/webhook_channels?page_size=1", headers=tenant.headers)
    first = listed.json()["results"][0]  # newest first: the registration
    assert first["pattern"] == CHATS and first["source"] == "operator"
    assert first["resource_schemas"]["added"] == CHAT_SCHEMA
    assert "required" not in first["resource_schemas"]["changed"]


async def test_registration_is_checked(client: httpx.AsyncClient, settings: Settings) -> None:
    overlap = await _register(client, settings, pattern="/api/v5/orgs/{organization_id}/*")
    assert overlap.status_code == 400 and "pattern" in overlap.json()["errors"]
    assert "Overlaps the service's own channel" in overlap.json()["errors"]["pattern"][0]
    bad_schema = await _register(client, settings, resource_schema={"type": "nonsense"})
    assert bad_schema.status_code == 400 and "resource_schema" in bad_schema.json()["errors"]
    bad_example = await _register(client, settings, example_resource={"id": 1})
    assert bad_example.status_code == 400
    assert set(bad_example.json()["errors"]) == {"example_resource.id", "example_resource.is_ended"}
    bad_pattern = await _register(client, settings, pattern="/chats")
    assert bad_pattern.status_code == 400 and "pattern" in bad_pattern.json()["errors"]
    anonymous = await client.post("/internal/v1/webhook_channels", json={})
    assert anonymous.status_code == 401


@pytest.mark.subprocess
async def test_cli_registers_a_family(settings: Settings, engine: AsyncEngine, tmp_path: Path) -> None:
    pattern = f"/api/v5/orgs/{{organization_id}}/cli-{uuid.uuid4().hex[:8]}"
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(CHAT_SCHEMA))
    try:
        entry = admin(
            "register-channel",
            "--pattern",
            pattern,
            "--scope",
            "reports",
            "--schema-file",
            str(schema_file),
            "--actions",
            "added,removed",
        )
        assert entry["pattern"] == pattern and entry["actions"] == ["added", "removed"]
        async with AsyncSession(engine) as session:
            row = (
                await session.scalars(select(WebhookChannel).where(WebhookChannel.pattern == pattern))
            ).one()
            assert row.resource_schema == CHAT_SCHEMA
        refused = run_cli(
            "admin",
            "register-channel",
            "--pattern",
            pattern,
            "--scope",
            "root",
            "--schema-file",
            str(schema_file),
        )
        assert refused.returncode != 0 and "scope" in refused.stderr
    finally:
        async with AsyncSession(engine) as session:
            await session.execute(delete(WebhookChannel).where(WebhookChannel.pattern == pattern))
            await session.commit()
