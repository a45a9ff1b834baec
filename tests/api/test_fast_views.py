"""Lists (and the owned app's retrieve route) serialize compiled rows straight to JSON.

Each item must be byte for byte what the response model produces for the same object: a list
body is compared with the bodies of the retrieve routes of its items, and where a retrieve route
is itself a compiled view (owned apps) it is compared with a route that answers through the
model (PATCH).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import Asset, User
from apps_api.models.base import utcnow
from tests.fixtures.factories import Tenant, make_app, make_log_entry


def _page_body(list_body: dict[str, object], items: list[bytes]) -> bytes:
    links = json.dumps({"next": list_body["next"], "previous": list_body["previous"]}, separators=(",", ":"))
    return links[:-1].encode() + b',"results":[' + b",".join(items) + b"]}"


async def _assert_items_as_retrieved(
    client: httpx.AsyncClient, tenant: Tenant, list_url: str, item_url: str, **params: str
) -> list[dict[str, object]]:
    listed = await client.get(list_url, params=params, headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"] == "application/json"
    body = listed.json()
    items = []
    for item in body["results"]:
        retrieved = await client.get(item_url.format(id=item["id"]), headers=tenant.headers)
        assert retrieved.status_code == 200, retrieved.text
        items.append(retrieved.content)
    assert listed.content == _page_body(body, items)
    return list(body["results"])


async def test_owned_and_public_lists_match_the_models(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    icon = Asset(
        organization_id=tenant.org_id,
        url="https://cdn.example.com/ikon-ä.png",
        content_type="image/png",
        size=1,
    )
    session.add(icon)
    editor = User(
        organization_id=tenant.org_id,
        email=f"{uuid.uuid4().hex}@example.com",
        first_name='Zoë \u2028 "quoted" \\ <tag>',
        last_name=None,
        alias="z",
        avatar_url="https://cdn.example.com/a.png",
        permissions=["settings"],
    )
    session.add(editor)
    await session.flush()
    now = utcnow().replace(microsecond=0)  # isoformat drops zero microseconds: both paths must agree
    await make_app(
        session,
        tenant.organization,
        name="Äpp \U0001f600 \t tab",
        icon_asset_id=icon.id,
        is_available_to_anyone=True,
        is_approved=True,
        required_scopes=["reports", "settings"],
        trigger_conditions=["install"],
        allowed_redirect_uris=["https://example.com/cb"],
        created_by_user_id=editor.id,
        updated_by_user_id=tenant.user.id,
        created_at=now,
    )
    await make_app(session, tenant.organization, is_available_to_anyone=True, is_approved=True)
    await make_app(session, tenant.organization, name="Private", created_at=now - timedelta(seconds=1))
    await session.flush()

    owned = f"/api/v5/orgs/{tenant.org_id}/owned_apps"
    listed = await client.get(owned, headers=tenant.headers)
    for item in listed.json()["results"]:
        # A PATCH that changes nothing answers through the OwnedApp model.
        through_model = await client.patch(
            f"{owned}/{item['id']}", json={"description": item["description"]}, headers=tenant.headers
        )
        assert through_model.status_code == 200, through_model.text
        retrieved = await client.get(f"{owned}/{item['id']}", headers=tenant.headers)
        assert retrieved.status_code == 200, retrieved.text
        assert retrieved.headers["content-type"] == "application/json"
        assert retrieved.content == through_model.content
    results = await _assert_items_as_retrieved(client, tenant, owned, owned + "/{id}")
    assert len(results) == 3
    assert {bool(item["icon_asset"]) for item in results} == {True, False}
    await _assert_items_as_retrieved(client, tenant, owned, owned + "/{id}", page_size="2")
    await _assert_items_as_retrieved(client, tenant, owned, owned + "/{id}", ordering="created_at")
    public = await _assert_items_as_retrieved(
        client, tenant, "/api/v5/public_apps", "/api/v5/public_apps/{id}", page_size="100"
    )
    assert {"Äpp \U0001f600 \t tab", "Test app"} <= {item["name"] for item in public}
    assert all("secret" not in item for item in public)


async def test_log_entry_list_matches_the_model(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    for number, (headers, completed) in enumerate(
        (({"content-type": "text/plain", "x-ünï": "ç\n"}, True), (None, False), ({}, True))
    ):
        await make_log_entry(
            session,
            app_id=app.id,
            organization_id=tenant.org_id,
            resource_id=f"r{number}",
            status="successful" if completed else "pending",
            completed_at=utcnow().replace(microsecond=0) if completed else None,
            response_headers=headers,
            response_body="bödy \x01" if completed else None,
        )
    base = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhook_log_entries"
    assert len(await _assert_items_as_retrieved(client, tenant, base, base + "/{id}")) == 3
    await _assert_items_as_retrieved(client, tenant, base, base + "/{id}", status="successful")


def test_page_datetimes_are_written_as_the_models_write_them() -> None:
    """json_page leaves datetimes to orjson; whole seconds, microseconds and UTC must match `iso_utc`."""
    from datetime import UTC, datetime

    from pydantic import BaseModel

    from apps_api.kit.pagination import json_page
    from apps_api.kit.schemas import UTCDateTime

    class Stamped(BaseModel):
        at: UTCDateTime

    for at in (
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        body = json_page(None, None, [{"at": at}]).body
        item = Stamped(at=at).model_dump_json().encode()
        assert body == b'{"next":null,"previous":null,"results":[' + item + b"]}"


async def test_install_answers_as_retrieved(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    """The install's view is built from the rows it wrote: byte for byte the retrieve route's."""
    icon = Asset(
        organization_id=other_tenant.org_id,
        url="https://cdn.example.com/ikon-ä.png",
        content_type="image/png",
        size=1,
    )
    session.add(icon)
    await session.flush()
    bot_app = await make_app(
        session,
        other_tenant.organization,
        name="Äpp \U0001f600 \t tab",
        icon_asset_id=icon.id,
        is_available_to_anyone=True,
        is_approved=True,
        is_app_user_required=True,
        app_user_default_first_name='Zoë \u2028 "quoted"',
        app_user_default_last_name="Bot",
        required_scopes=["settings", "reports"],
        trigger_conditions=["install", "chat_end"],
        created_at=utcnow().replace(microsecond=0),  # isoformat drops zero microseconds
    )
    own_app = await make_app(session, tenant.organization)
    for app_id, body in (
        (bot_app.id, {"allowed_scopes": ["users", "settings", "reports"], "app_user": {"alias": "z"}}),
        (own_app.id, {}),
    ):
        installed = await client.post(
            f"/api/v5/orgs/{tenant.org_id}/app_installations",
            json={"app_id": str(app_id), **body},
            headers=tenant.headers,
        )
        assert installed.status_code == 201, installed.text
        assert installed.headers["content-type"] == "application/json"
        retrieved = await client.get(
            f"/api/v5/orgs/{tenant.org_id}/app_installations/{installed.json()['id']}", headers=tenant.headers
        )
        assert retrieved.status_code == 200, retrieved.text
        assert installed.content == retrieved.content


async def test_create_answers_as_retrieved(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    """The created app's view is built from the values written: byte for byte the retrieve route's."""
    icon = Asset(organization_id=tenant.org_id, url="https://cdn.example.com/ikon-ä.png", size=1, width=2)
    session.add(icon)
    await session.flush()
    tenant.user.first_name, tenant.user.alias = 'Zoë \u2028 "quoted" \\ <tag>', None
    await session.flush()
    url = f"/api/v5/orgs/{tenant.org_id}/owned_apps"
    minimal = {
        "name": "  Äpp \U0001f600 \t tab ",
        "description": "d",
        "is_app_user_required": False,
        "terms_of_service_url": "https://example.com/tos",
        "privacy_policy_url": "http://example.com/privacy",
    }
    full = {
        **minimal,
        "icon_asset_id": str(icon.id),
        "is_available_to_anyone": True,
        "is_available_to_partners": True,
        "is_app_user_required": True,
        "app_user_default_first_name": "Bot",
        "app_user_default_last_name": "Ä",
        "trigger_url": "https://example.com/trigger",
        "trigger_conditions": ["install", "chat_end", "install"],
        "required_scopes": ["settings", "reports"],
        "allowed_redirect_uris": ["https://example.com/cb"],
        "installation_count": 99,  # read-only: ignored
    }
    for body in (minimal, full):
        created = await client.post(url, json=body, headers=tenant.headers)
        assert created.status_code == 201, created.text
        assert created.headers["content-type"] == "application/json"
        retrieved = await client.get(f"{url}/{created.json()['id']}", headers=tenant.headers)
        assert retrieved.status_code == 200, retrieved.text
        assert created.content == retrieved.content


async def test_installed_apps_and_webhooks_lists_match_the_models(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Installed apps and webhooks: list items byte for byte as their (model) retrieve routes."""
    icon = Asset(
        organization_id=other_tenant.org_id, url="https://cdn.example.com/ikon-ä.png", size=1, width=2
    )
    session.add(icon)
    # The webhooks' creator embeds as a user: names that JSON must escape.
    tenant.user.first_name, tenant.user.last_name = 'Zoë \u2028 "quoted"', None
    await session.flush()
    now = utcnow().replace(microsecond=0)
    public = await make_app(
        session,
        other_tenant.organization,
        name="Äpp \U0001f600",
        icon_asset_id=icon.id,
        is_available_to_anyone=True,
        is_approved=True,
        trigger_conditions=["install", "chat_end"],
        created_at=now,
    )
    own = await make_app(session, tenant.organization, created_at=now - timedelta(seconds=1))
    for app in (public, own):
        installed = await client.post(
            f"/api/v5/orgs/{tenant.org_id}/app_installations",
            json={"app_id": str(app.id)},
            headers=tenant.headers,
        )
        assert installed.status_code == 201, installed.text
    base = f"/api/v5/orgs/{tenant.org_id}/installed_apps"
    assert len(await _assert_items_as_retrieved(client, tenant, base, base + "/{id}")) == 2
    await _assert_items_as_retrieved(client, tenant, base, base + "/{id}", page_size="1")

    hooks = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{own.id}/webhooks"
    for number, subscriptions in enumerate(
        (
            [],
            [
                {
                    "channel_pattern": f"/api/v5/orgs/{{organization_id}}/chats/{index}",
                    "is_additions_subscribed": index % 2 == 0,
                    "is_changes_subscribed": True,
                    "is_removals_subscribed": False,
                }
                for index in (3, 1, 2)
            ],
        )
    ):
        created = await client.post(
            hooks,
            json={"endpoint_url": f"https://example.com/ä/{number}", "channel_subscriptions": subscriptions},
            headers=tenant.headers,
        )
        assert created.status_code == 201, created.text
    results = await _assert_items_as_retrieved(client, tenant, hooks, hooks + "/{id}")
    assert [len(item["channel_subscriptions"]) for item in results] == [3, 0]
    assert [s["channel_pattern"][-1] for s in results[0]["channel_subscriptions"]] == ["3", "1", "2"]
    await _assert_items_as_retrieved(client, tenant, hooks, hooks + "/{id}", ordering="created_at")
