# ruff: noqa: RUF001 - the point of these tests is characters that look alike
"""Bad input the limits and validators must refuse cleanly (tests/operations/test_operations.py has the
body-size, content-type and malformed-JSON cases): unicode round-trips, CR/LF and control
characters in URLs, the subscriptions limit, huge JSON arrays."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import Webhook
from apps_api.settings import Settings
from apps_api.webhooks.schemas import MAX_SUBSCRIPTIONS
from tests.fixtures.apps import app_payload, create_app_via_api, owned_url
from tests.fixtures.factories import Tenant

RTL_NAME = "\u202eمرحبا بالعالم שלום\u202c 🚀 Zoë"
UNICODE_TEXT = "Ελληνικά · 日本語 · ﷽ · e\u0301 · 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 · \u200f"


def subscription(index: int) -> dict[str, Any]:
    return {
        "channel_pattern": f"/api/v5/orgs/{{organization_id}}/c{index}",
        "is_additions_subscribed": True,
        "is_changes_subscribed": True,
        "is_removals_subscribed": True,
    }


async def test_unicode_and_rtl_names_round_trip(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create_app_via_api(
        client,
        tenant,
        name=RTL_NAME,
        description=UNICODE_TEXT,
        app_user_default_first_name="أحمد",
        app_user_default_last_name="כהן",
        app_user_default_alias="\u202bאלכס\u202c",
    )
    fetched = (await client.get(owned_url(tenant, created["id"]), headers=tenant.headers)).json()
    for body in (created, fetched):
        assert body["name"] == RTL_NAME and body["description"] == UNICODE_TEXT
        assert body["app_user_default_first_name"] == "أحمد"
        assert body["app_user_default_alias"] == "\u202bאלכס\u202c"
    installed = await client.post(
        f"/api/v5/orgs/{tenant.org_id}/app_installations",
        json={"app_id": created["id"], "app_user": {"first_name": "Ωmega", "last_name": "ليلى"}},
        headers=tenant.headers,
    )
    assert installed.status_code == 201, installed.text
    assert installed.json()["app_user"]["full_name"] == "Ωmega ليلى"
    webhook = await client.post(
        owned_url(tenant, created["id"], "/webhooks"),
        json={"endpoint_url": "https://bücher.example/hook/ünïcode?q=日本", "channel_subscriptions": []},
        headers=tenant.headers,
    )
    assert webhook.status_code == 201, webhook.text
    assert webhook.json()["endpoint_url"] == "https://bücher.example/hook/ünïcode?q=日本"
    assert webhook.json()["app"]["name"] == RTL_NAME


async def test_a_name_of_75_emoji_fits_and_76_does_not(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """Characters, not bytes: 75 four-byte emoji are a valid name."""
    fits = await client.post(owned_url(tenant), json=app_payload(name="🚀" * 75), headers=tenant.headers)
    assert fits.status_code == 201 and fits.json()["name"] == "🚀" * 75
    too_long = await client.post(owned_url(tenant), json=app_payload(name="🚀" * 76), headers=tenant.headers)
    assert too_long.status_code == 400 and "name" in too_long.json()["errors"]


BAD_URLS = [
    "https://evil.example.com/a\r\nX-Injected: 1",
    "https://evil.example.com/a\nSet-Cookie: x=1",
    "https://evil.example.com/a\rb",
    "https://evil.example.com/a b",
    "https://evil.example.com/\ta",
    "https://evil.example.com/a\x00b",
    "https://evil.example.com/a\x7fb",
    "https://evil.example.com\r\n.attacker.com/",
    "https://evil.example.com/a\u2028b",
]


@pytest.mark.parametrize("url", BAD_URLS, ids=[repr(u)[1:30] for u in BAD_URLS])
async def test_crlf_spaces_and_control_characters_in_urls_are_400(
    client: httpx.AsyncClient, tenant: Tenant, url: str
) -> None:
    app = await create_app_via_api(client, tenant)
    for field in ("terms_of_service_url", "privacy_policy_url", "trigger_url"):
        response = await client.patch(owned_url(tenant, app["id"]), json={field: url}, headers=tenant.headers)
        assert response.status_code == 400, (field, response.text)
        assert field in response.json()["errors"]
    redirect = await client.patch(
        owned_url(tenant, app["id"]), json={"allowed_redirect_uris": [url]}, headers=tenant.headers
    )
    assert redirect.status_code == 400
    assert any(key.startswith("allowed_redirect_uris") for key in redirect.json()["errors"])
    webhook = await client.post(
        owned_url(tenant, app["id"], "/webhooks"),
        json={"endpoint_url": url, "channel_subscriptions": []},
        headers=tenant.headers,
    )
    assert webhook.status_code == 400 and "endpoint_url" in webhook.json()["errors"], webhook.text
    unchanged = (await client.get(owned_url(tenant, app["id"]), headers=tenant.headers)).json()
    assert unchanged["trigger_url"] is None and unchanged["terms_of_service_url"].startswith("https://bot.")


async def test_percent_encoded_crlf_is_just_data(client: httpx.AsyncClient, tenant: Tenant) -> None:
    app = await create_app_via_api(
        client, tenant, trigger_url="https://app.example.com/t?x=%0D%0AX-Injected:1"
    )
    assert app["trigger_url"] == "https://app.example.com/t?x=%0D%0AX-Injected:1"


async def test_ten_thousand_subscriptions_are_refused_by_the_documented_limits(
    client: httpx.AsyncClient, tenant: Tenant, session: AsyncSession, settings: Settings
) -> None:
    app = await create_app_via_api(client, tenant)
    url = owned_url(tenant, app["id"], "/webhooks")
    body = {
        "endpoint_url": "https://hooks.example.com/x",
        "channel_subscriptions": [subscription(i) for i in range(10_000)],
    }
    encoded = json.dumps(body).encode()
    assert len(encoded) > settings.max_body_bytes  # 10,000 subscriptions never fit in a request
    too_large = await client.post(
        url, content=encoded, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert too_large.status_code == 413 and "exceeds" in too_large.json()["detail"]
    # As many as fit in a body are refused by the subscriptions limit, with one message.
    body["channel_subscriptions"] = [subscription(i) for i in range(5_000)]
    too_many = await client.post(url, json=body, headers=tenant.headers)
    assert too_many.status_code == 400
    assert too_many.json()["errors"] == {
        "channel_subscriptions": [
            f"List should have at most {MAX_SUBSCRIPTIONS} items after validation, not 5000"
        ]
    }
    body["channel_subscriptions"] = [subscription(i) for i in range(MAX_SUBSCRIPTIONS)]
    exactly = await client.post(url, json=body, headers=tenant.headers)
    assert exactly.status_code == 201 and len(exactly.json()["channel_subscriptions"]) == MAX_SUBSCRIPTIONS
    patched = await client.patch(
        f"{url}/{exactly.json()['id']}",
        json={"channel_subscriptions": [subscription(i) for i in range(MAX_SUBSCRIPTIONS + 1)]},
        headers=tenant.headers,
    )
    assert patched.status_code == 400 and "channel_subscriptions" in patched.json()["errors"]
    count = await session.scalar(select(func.count()).select_from(Webhook).where(Webhook.app_id == app["id"]))
    assert count == 1


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/webhooks", "channel_subscriptions"),
        ("", "allowed_redirect_uris"),
        ("", "required_scopes"),
        ("", "trigger_conditions"),
    ],
)
async def test_huge_json_arrays_are_400_with_a_short_answer(
    client: httpx.AsyncClient, tenant: Tenant, path: str, field: str
) -> None:
    app = await create_app_via_api(client, tenant)
    payload: dict[str, Any] = {"endpoint_url": "https://hooks.example.com/x"} if path else {}
    payload[field] = [0] * 300_000  # about 900 KB: under the body limit, absurd as data
    method = client.post if path else client.patch
    response = await method(owned_url(tenant, app["id"], path), json=payload, headers=tenant.headers)
    assert response.status_code == 400, response.text[:300]
    assert len(response.content) < 20_000, f"{len(response.content)} bytes of errors"
    assert len(response.json()["errors"]) <= 50
    assert any(key.startswith(field) for key in response.json()["errors"])


async def test_nul_characters_are_400_not_500(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    """PostgreSQL cannot store U+0000 in text or jsonb; every body field refuses it by name."""
    response = await client.post(owned_url(tenant), json=app_payload(name="a\x00b"), headers=tenant.headers)
    assert response.status_code == 400 and "name" in response.json()["errors"]
    app = await create_app_via_api(client, tenant)
    webhook = await client.post(
        owned_url(tenant, app["id"], "/webhooks"),
        json={
            "endpoint_url": "https://hooks.example.com/x",
            "channel_subscriptions": [
                {**subscription(0), "channel_pattern": "/api/v5/orgs/{organization_id}/a\x00"}
            ],
        },
        headers=tenant.headers,
    )
    assert webhook.status_code == 400, webhook.text
    event = {
        "organization_id": str(tenant.org_id),
        "channel": f"/api/v5/orgs/{tenant.org_id}/chats",
        "action": "added",
        "resource_id": "c1",
        "resource": {"text": "nul \x00 inside"},
    }
    ingested = await client.post(
        "/internal/v1/events",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {settings.ingest_service_key}"},
    )
    assert ingested.status_code == 400 and "events.0.resource" in ingested.json()["errors"], ingested.text


async def test_huge_event_batches_are_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {settings.ingest_service_key}"}
    response = await client.post("/internal/v1/events", json={"events": [{}] * 200_000}, headers=headers)
    assert response.status_code == 400
    assert len(response.content) < 20_000
    assert "events" in response.json()["errors"]
