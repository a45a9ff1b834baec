"""Issue 13, item 2: at most 20 webhooks per app and 500 channel subscriptions per app."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.webhooks.service import MAX_SUBSCRIPTIONS_PER_APP, MAX_WEBHOOKS_PER_APP
from tests.fixtures.factories import Tenant, make_app


def subscriptions(count: int, prefix: str = "c") -> list[dict[str, Any]]:
    return [
        {
            "channel_pattern": f"/api/v5/orgs/{{organization_id}}/{prefix}{i}",
            "is_additions_subscribed": True,
            "is_changes_subscribed": True,
            "is_removals_subscribed": True,
        }
        for i in range(count)
    ]


async def test_at_most_20_webhooks_per_app(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    assert MAX_WEBHOOKS_PER_APP == 20
    app, other = await make_app(session, tenant.organization), await make_app(session, tenant.organization)
    url = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    body = {"endpoint_url": "https://hooks.example.com/x", "channel_subscriptions": []}
    ids = []
    for _ in range(20):
        created = await client.post(url, json=body, headers=tenant.headers)
        assert created.status_code == 201
        ids.append(created.json()["id"])
    refused = await client.post(url, json=body, headers=tenant.headers)
    assert refused.status_code == 400 and "at most 20 webhooks" in refused.json()["detail"]
    # Per app: another app of the same owner is not affected; deleting one makes room.
    other_url = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{other.id}/webhooks"
    assert (await client.post(other_url, json=body, headers=tenant.headers)).status_code == 201
    assert (await client.delete(f"{url}/{ids[0]}", headers=tenant.headers)).status_code == 204
    assert (await client.post(url, json=body, headers=tenant.headers)).status_code == 201


async def test_at_most_500_subscriptions_per_app_across_its_webhooks(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    assert MAX_SUBSCRIPTIONS_PER_APP == 500
    app = await make_app(session, tenant.organization)
    url = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhooks"
    ids = []
    for n in range(5):
        created = await client.post(
            url,
            json={
                "endpoint_url": f"https://hooks.example.com/{n}",
                "channel_subscriptions": subscriptions(100),
            },
            headers=tenant.headers,
        )
        assert created.status_code == 201
        ids.append(created.json()["id"])
    one_more = {"endpoint_url": "https://hooks.example.com/6", "channel_subscriptions": subscriptions(1)}
    refused = await client.post(url, json=one_more, headers=tenant.headers)
    assert refused.status_code == 400
    (message,) = refused.json()["errors"]["channel_subscriptions"]
    assert "at most 500 channel subscriptions" in message
    # A webhook without subscriptions is still fine; replacing a webhook's list counts the others only.
    empty = {"endpoint_url": "https://hooks.example.com/7", "channel_subscriptions": []}
    assert (await client.post(url, json=empty, headers=tenant.headers)).status_code == 201
    same = await client.patch(
        f"{url}/{ids[0]}", json={"channel_subscriptions": subscriptions(100, "d")}, headers=tenant.headers
    )
    assert same.status_code == 200
    grown = await client.put(
        f"{url}/{ids[0]}",
        json={
            "endpoint_url": "https://hooks.example.com/0",
            "channel_subscriptions": subscriptions(1, "e") * 1,
        },
        headers=tenant.headers,
    )
    assert grown.status_code == 200
    # Now 401 in all: a new webhook of 100 would make 501.
    refused = await client.post(
        url,
        json={"endpoint_url": "https://hooks.example.com/8", "channel_subscriptions": subscriptions(100)},
        headers=tenant.headers,
    )
    assert (
        refused.status_code == 400
        and "this change would make 501" in refused.json()["errors"]["channel_subscriptions"][0]
    )
