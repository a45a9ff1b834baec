"""Owned apps: create, read, PUT/PATCH, delete; every validation rule; the App provider rule."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.platform.service import create_asset
from tests.fixtures.apps import app_payload, create_app_via_api, owned_url
from tests.fixtures.factories import Tenant, make_app, make_tenant

OWNED_APP_ATTRIBUTES = {
    "id",
    "name",
    "description",
    "owned_by_organization_id",
    "owned_by_organization",
    "icon_asset_id",
    "icon_asset",
    "is_available_to_anyone",
    "is_available_to_partners",
    "is_app_user_required",
    "app_user_default_first_name",
    "app_user_default_last_name",
    "app_user_default_alias",
    "terms_of_service_url",
    "privacy_policy_url",
    "trigger_url",
    "trigger_conditions",
    "required_scopes",
    "allowed_redirect_uris",
    "installation_count",
    "created_at",
    "updated_at",
    "created_by_user_id",
    "created_by_user",
    "updated_by_user_id",
    "updated_by_user",
    "secret",
}


async def test_create_returns_every_owned_attribute(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    icon = await create_asset(
        session=session, organization_id=tenant.org_id, url="https://cdn.example.com/a.png"
    )
    response = await client.post(
        owned_url(tenant),
        json=app_payload(
            icon_asset_id=str(icon.id),
            is_available_to_partners=True,
            trigger_url="https://bot.example.com/trigger",
            trigger_conditions=["uninstall", "install", "chat_start", "install"],
            required_scopes=["users", "reports", "users"],
            allowed_redirect_uris=["https://bot.example.com/done"],
            app_user_default_alias="chatty",
        ),
        headers=tenant.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == OWNED_APP_ATTRIBUTES
    assert body["owned_by_organization"] == {"id": str(tenant.org_id), "name": "Acme"}
    assert body["icon_asset"]["url"] == "https://cdn.example.com/a.png"
    assert body["trigger_conditions"] == ["chat_start", "install", "uninstall"]
    assert body["required_scopes"] == ["reports", "users"]
    assert body["installation_count"] == 0
    assert body["is_available_to_partners"] is True and body["is_available_to_anyone"] is False
    # 32 random bytes as 64 lowercase hex (URL- and form-safe); its base64 decoding is the signing key.
    assert (
        re.fullmatch(r"[0-9a-f]{64}", body["secret"])
        and len(base64.b64decode(body["secret"], validate=True)) == 48
    )
    assert body["created_by_user_id"] == body["updated_by_user_id"] == str(tenant.user.id)
    assert body["created_by_user"] == {
        "id": str(tenant.user.id),
        "first_name": "Test",
        "last_name": "User",
        "full_name": "Test User",
        "alias": None,
        "organization_id": str(tenant.org_id),
        "is_bot": False,
        "avatar": None,
    }

    fetched = await client.get(owned_url(tenant, body["id"]), headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_list_is_newest_first_and_only_own_apps(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    first = await create_app_via_api(client, tenant, name="First")
    second = await create_app_via_api(client, tenant, name="Second")
    await make_app(session, other_tenant.organization, name="Foreign")

    response = await client.get(owned_url(tenant), headers=tenant.headers)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["id"] for item in results] == [second["id"], first["id"]]
    assert all(set(item) == OWNED_APP_ATTRIBUTES for item in results)


async def test_foreign_app_is_404_not_403(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await make_app(
        session, other_tenant.organization, is_available_to_anyone=True, is_approved=True
    )
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(
            method, owned_url(tenant, foreign.id), json=app_payload(), headers=tenant.headers
        )
        assert response.status_code == 404, method
        assert response.json() == {"detail": "No owned app found with the given ID."}


async def test_other_organizations_path_is_403(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await client.post(owned_url(other_tenant), json=app_payload(), headers=tenant.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "   "}, "name", "This field may not be blank."),
        ({"name": "x" * 76}, "name", "Ensure this field has no more than 75 characters."),
        ({"name": None}, "name", None),
        ({"description": ""}, "description", "This field may not be blank."),
        ({"terms_of_service_url": "ftp://example.com/tos"}, "terms_of_service_url", None),
        ({"privacy_policy_url": "/relative/privacy"}, "privacy_policy_url", None),
        ({"privacy_policy_url": "not a url"}, "privacy_policy_url", None),
        ({"trigger_url": "javascript:alert(1)"}, "trigger_url", None),
        # Trigger tokens travel in its query string: https only, but for a loopback host.
        ({"trigger_url": "http://bot.example.com/trigger"}, "trigger_url", None),
        ({"trigger_url": "http://10.0.0.1/trigger"}, "trigger_url", None),
        ({"trigger_url": "http://127.0.0.1.example.com/trigger"}, "trigger_url", None),
        ({"allowed_redirect_uris": ["http://bot.example.com/x"]}, "allowed_redirect_uris.0", None),
        (
            {"allowed_redirect_uris": ["https://ok.example.com/", "bot.example.com"]},
            "allowed_redirect_uris.1",
            None,
        ),
        ({"trigger_conditions": ["install", "explode"]}, "trigger_conditions", None),
        ({"required_scopes": ["settings", "root"]}, "required_scopes", None),
        ({"app_user_default_first_name": None}, "app_user_default_first_name", None),
        ({"app_user_default_last_name": " "}, "app_user_default_last_name", "This field may not be blank."),
        ({"app_user_default_alias": ""}, "app_user_default_alias", "This field may not be blank."),
        ({"is_app_user_required": "maybe"}, "is_app_user_required", None),
        ({"icon_asset_id": str(uuid.uuid4())}, "icon_asset_id", None),
        ({"icon_asset_id": "nope"}, "icon_asset_id", "Must be a valid UUID."),
    ],
)
async def test_invalid_attribute_is_400_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant, overrides: dict[str, Any], field: str, message: str | None
) -> None:
    response = await client.post(owned_url(tenant), json=app_payload(**overrides), headers=tenant.headers)

    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert list(errors) == [field]
    if message is not None:
        assert errors[field] == [message]


@pytest.mark.parametrize(
    "url",
    [
        "https://bot.example.com/trigger",
        "http://127.0.0.1:8080/trigger",
        "http://127.8.9.10/trigger",
        "http://[::1]:9000/trigger",
        "http://localhost:3000/trigger",
    ],
)
async def test_trigger_url_is_https_or_a_loopback_host(
    client: httpx.AsyncClient, tenant: Tenant, url: str
) -> None:
    response = await client.post(owned_url(tenant), json=app_payload(trigger_url=url), headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.json()["trigger_url"] == url


async def test_unknown_trigger_condition_and_scope_are_named(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        owned_url(tenant),
        json=app_payload(trigger_conditions=["explode"], required_scopes=["root"]),
        headers=tenant.headers,
    )
    errors = response.json()["errors"]
    assert "explode" in errors["trigger_conditions"][0]
    assert "root" in errors["required_scopes"][0]


async def test_missing_required_attributes_are_each_named(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(owned_url(tenant), json={"trigger_url": None}, headers=tenant.headers)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        field: ["This field is required."]
        for field in (
            "name",
            "description",
            "is_app_user_required",
            "terms_of_service_url",
            "privacy_policy_url",
        )
    }


async def test_app_user_names_required_only_when_app_user_is(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    payload = app_payload()
    del payload["app_user_default_first_name"], payload["app_user_default_last_name"]

    refused = await client.post(owned_url(tenant), json=payload, headers=tenant.headers)
    assert refused.status_code == 400
    assert set(refused.json()["errors"]) == {"app_user_default_first_name", "app_user_default_last_name"}

    payload["is_app_user_required"] = False
    accepted = await client.post(owned_url(tenant), json=payload, headers=tenant.headers)
    assert accepted.status_code == 201
    assert accepted.json()["app_user_default_first_name"] is None


async def test_foreign_icon_asset_is_400(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await create_asset(
        session=session, organization_id=other_tenant.org_id, url="https://x.example/i.png"
    )
    response = await client.post(
        owned_url(tenant), json=app_payload(icon_asset_id=str(foreign.id)), headers=tenant.headers
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["icon_asset_id"]


async def test_read_only_and_unknown_attributes_are_ignored(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    forged = str(uuid.uuid4())
    created = await create_app_via_api(
        client,
        tenant,
        id=forged,
        secret="forged-secret",
        installation_count=99,
        owned_by_organization_id=forged,
        created_by_user_id=forged,
        created_at="2001-01-01T00:00:00Z",
        colour="blue",
    )
    assert created["id"] != forged and created["secret"] != "forged-secret"
    assert created["installation_count"] == 0
    assert created["owned_by_organization_id"] == str(tenant.org_id)
    assert created["created_by_user_id"] == str(tenant.user.id)
    assert not created["created_at"].startswith("2001")
    assert "colour" not in created

    # A client may PUT back what it got.
    put = await client.put(owned_url(tenant, created["id"]), json=created, headers=tenant.headers)
    assert put.status_code == 200, put.text
    assert put.json()["secret"] == created["secret"]


async def test_put_requires_all_required_attributes_and_patch_changes_only_given(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_app_via_api(
        client, tenant, required_scopes=["reports"], trigger_url="https://t.example/"
    )
    url = owned_url(tenant, created["id"])

    incomplete = await client.put(url, json={"name": "Renamed"}, headers=tenant.headers)
    assert incomplete.status_code == 400
    assert set(incomplete.json()["errors"]) == {
        "description",
        "is_app_user_required",
        "terms_of_service_url",
        "privacy_policy_url",
    }

    patched = await client.patch(url, json={"name": "Renamed"}, headers=tenant.headers)
    assert patched.status_code == 200
    body = patched.json()
    assert body["name"] == "Renamed"
    unchanged = {key for key in created if key not in ("name", "updated_at")}
    assert {key: body[key] for key in unchanged} == {key: created[key] for key in unchanged}
    assert body["updated_at"] > created["updated_at"]

    replaced = await client.put(
        url, json=app_payload(name="Put name", is_app_user_required=False), headers=tenant.headers
    )
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "Put name" and replaced.json()["is_app_user_required"] is False
    # PUT replaces: every optional attribute left out returns to its default.
    assert replaced.json()["trigger_url"] is None
    assert replaced.json()["required_scopes"] == []
    stored = await client.get(url, headers=tenant.headers)
    assert stored.json()["trigger_url"] is None and stored.json()["required_scopes"] == []

    # PATCH validates against the stored app: turning the app user on needs default names.
    no_names = await create_app_via_api(
        client,
        tenant,
        is_app_user_required=False,
        app_user_default_first_name=None,
        app_user_default_last_name=None,
    )
    refused = await client.patch(
        owned_url(tenant, no_names["id"]), json={"is_app_user_required": True}, headers=tenant.headers
    )
    assert refused.status_code == 400
    assert set(refused.json()["errors"]) == {"app_user_default_first_name", "app_user_default_last_name"}
    blank = await client.patch(url, json={"description": " "}, headers=tenant.headers)
    assert blank.status_code == 400 and list(blank.json()["errors"]) == ["description"]


async def test_updated_by_is_the_last_editor(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    from tests.fixtures.factories import make_user

    created = await create_app_via_api(client, tenant)
    editor, key = await make_user(session, tenant.organization)
    response = await client.patch(
        owned_url(tenant, created["id"]),
        json={"description": "New"},
        headers={"Authorization": f"Token {key}"},
    )
    body = response.json()
    assert body["created_by_user_id"] == str(tenant.user.id)
    assert body["updated_by_user_id"] == str(editor.id)
    assert body["updated_by_user"]["id"] == str(editor.id)


@pytest.mark.parametrize("field", ["is_available_to_partners", "is_available_to_anyone"])
async def test_publicity_needs_app_provider_feature(
    client: httpx.AsyncClient, session: AsyncSession, field: str
) -> None:
    plain = await make_tenant(session, name="No provider", features=["apps"])

    created = await client.post(owned_url(plain), json=app_payload(**{field: True}), headers=plain.headers)
    assert created.status_code == 402
    assert "App provider" in created.json()["detail"]

    app = await create_app_via_api(client, plain)
    url = owned_url(plain, app["id"])
    patched = await client.patch(url, json={field: True}, headers=plain.headers)
    assert patched.status_code == 402
    put = await client.put(url, json=app_payload(**{field: True}), headers=plain.headers)
    assert put.status_code == 402
    # False is always fine, and a 400 in the same payload wins over the 402.
    assert (await client.patch(url, json={field: False}, headers=plain.headers)).status_code == 200
    invalid = await client.patch(url, json={field: True, "name": ""}, headers=plain.headers)
    assert invalid.status_code == 400
    fetched = await client.get(url, headers=plain.headers)
    assert fetched.json()[field] is False


async def test_delete_removes_the_app(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create_app_via_api(client, tenant)
    url = owned_url(tenant, created["id"])

    deleted = await client.delete(url, headers=tenant.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(url, headers=tenant.headers)).status_code == 404
    assert (await client.delete(url, headers=tenant.headers)).status_code == 404
