"""Send an example: `POST .../webhooks/{id}/test` with a catalogue channel sends its example body."""

from __future__ import annotations

import uuid

import httpx
import jsonschema
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery import channels
from apps_api.models import OutboundDelivery, WebhookLogEntry
from apps_api.webhooks.catalogue import BUILTIN_BY_PATTERN
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.delivery import World, sub, verified
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.installflow import make_installer
from tests.fixtures.webhooks import receivers, worker


def send_url(owner: Tenant, app_id: uuid.UUID, webhook_id: uuid.UUID) -> str:
    return f"/api/v5/orgs/{owner.org_id}/owned_apps/{app_id}/webhooks/{webhook_id}/test"


@pytest.mark.subprocess
async def test_an_example_arrives_signed_and_logged(
    world: World, api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider = await world.tenant("Provider")
    app = await world.app(provider)
    with receivers(None) as (receiver,), worker():
        webhook_id = await world.webhook(provider, app, receiver.url, sub(channels.USERS.pattern))
        sent = await api.post(
            send_url(provider, app.id, webhook_id),
            json={"channel": channels.WEBHOOKS.pattern, "action": "changed"},
            headers=provider.headers,
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["action"] == "changed" and sent.json()["status"] == "pending"
        await world.settle()

    [body] = verified(receiver, app.secret)
    entry = BUILTIN_BY_PATTERN[channels.WEBHOOKS.pattern]
    # The catalogue's example, in the webhook's own organization and app.
    assert body["channel"] == f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks"
    assert body["action"] == "changed"
    assert body["resource"] == entry.examples["changed"]["resource"]
    jsonschema.Draft202012Validator(entry.resource_schemas["changed"]).validate(body["resource"])
    async with AsyncSession(engine) as session:
        logged = (
            await session.scalars(select(WebhookLogEntry).where(WebhookLogEntry.webhook_id == webhook_id))
        ).one()
    assert logged.status == "successful" and logged.channel == body["channel"]
    assert logged.id == uuid.UUID(sent.json()["id"])


async def test_unknown_channel_or_action_is_400(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    hooks = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    created = await client.post(
        hooks, json={"endpoint_url": "https://hooks.example/x"}, headers=tenant.headers
    )
    url = f"{hooks}/{created.json()['id']}/test"
    chats = await client.post(
        url, json={"channel": "/api/v5/orgs/{organization_id}/chats"}, headers=tenant.headers
    )
    assert chats.status_code == 400 and set(chats.json()["errors"]) == {"channel"}
    action = await client.post(
        url, json={"channel": channels.USERS.pattern, "action": "changed"}, headers=tenant.headers
    )
    assert action.status_code == 400
    assert action.json()["errors"] == {
        "action": [f"`{channels.USERS.pattern}` has the actions added, removed."]
    }
    plain = await client.post(url, headers=tenant.headers)
    assert plain.status_code == 202 and plain.json()["action"] == "test"
    default_action = await client.post(url, json={"channel": channels.USERS.pattern}, headers=tenant.headers)
    assert default_action.status_code == 202 and default_action.json()["action"] == "added"


async def test_console_sends_a_chosen_example(client: httpx.AsyncClient, session: AsyncSession) -> None:
    provider = await make_installer(session, name="Bot Makers", features=["apps", "app_provider"])
    app = await make_app(session, provider.organization)
    hooks = f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/webhooks"
    created = await client.post(
        hooks, json={"endpoint_url": "https://hooks.example/x"}, headers=provider.headers
    )
    webhook_id = created.json()["id"]
    await sign_in(client, provider.user.email)
    token = await csrf(client)
    page = await client.get(f"/console/apps/{app.id}/webhooks/{webhook_id}")
    option = f"removed {channels.APP_INSTALLATIONS.pattern}"
    assert f'<option value="{option}">' in page.text

    sent = await client.post(
        f"/console/apps/{app.id}/webhooks/{webhook_id}/test", data={"csrf_token": token, "example": option}
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"].startswith(f"/console/apps/{app.id}/deliveries/")
    delivery = (
        await session.scalars(select(OutboundDelivery).where(OutboundDelivery.webhook_id == webhook_id))
    ).one()
    assert delivery.payload["action"] == "removed"
    assert delivery.payload["channel"].endswith("/app_installations")
    unknown = await client.post(
        f"/console/apps/{app.id}/webhooks/{webhook_id}/test",
        data={"csrf_token": token, "example": "added /api/v5/orgs/{organization_id}/chats"},
    )
    assert unknown.status_code == 400 and "Not a channel of the catalogue" in unknown.text
