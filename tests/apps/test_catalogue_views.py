"""Partner and installed views: who sees what, 404 for the invisible, secret only in the owned view."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.apps.schemas import AppShare, OwnedApp, PartnerApp, PublicApp
from apps_api.catalog.views import InstalledApp
from apps_api.installations.schemas import AppInstallation, OwnedAppInstallation
from apps_api.main import create_app
from tests.fixtures.apps import install_via_api, installations_url, owned_url, partner_app, partners, share
from tests.fixtures.factories import Tenant, make_app, make_tenant, minutes_ago

VIEW_ATTRIBUTES = {
    "id",
    "name",
    "description",
    "owned_by_organization_id",
    "owned_by_organization",
    "icon_asset_id",
    "icon_asset",
    "is_app_user_required",
    "installation_count",
    "created_at",
    "updated_at",
}
PARTNER_APP_ATTRIBUTES = VIEW_ATTRIBUTES | {"required_scopes"}
INSTALLED_APP_ATTRIBUTES = VIEW_ATTRIBUTES | {"trigger_conditions"}


def partner_apps_url(tenant: Tenant, app_id: Any = None) -> str:
    base = f"/api/v5/orgs/{tenant.org_id}/partner_apps"
    return f"{base}/{app_id}" if app_id is not None else base


def installed_apps_url(tenant: Tenant, app_id: Any = None) -> str:
    base = f"/api/v5/orgs/{tenant.org_id}/installed_apps"
    return f"{base}/{app_id}" if app_id is not None else base


async def test_partner_apps_are_partners_offered_apps_only(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    stranger = await make_tenant(session, name="Stranger", features=["apps", "app_provider"])
    await partners(session, tenant, other_tenant)
    offered = await partner_app(session, other_tenant, name="Offered", created_at=minutes_ago(3))
    shared = await make_app(session, other_tenant.organization, name="Shared", created_at=minutes_ago(2))
    await share(session, shared, tenant)
    private = await make_app(session, other_tenant.organization, name="Private")
    shared_elsewhere = await make_app(session, other_tenant.organization, name="Shared with stranger")
    await share(session, shared_elsewhere, stranger)
    not_a_partner = await partner_app(session, stranger, name="Stranger's")
    own = await partner_app(session, tenant, name="Own")

    response = await client.get(partner_apps_url(tenant), headers=tenant.headers)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["id"] for item in results] == [str(shared.id), str(offered.id)]
    assert all(set(item) == PARTNER_APP_ATTRIBUTES for item in results)
    assert results[0]["owned_by_organization"] == {"id": str(other_tenant.org_id), "name": "Globex"}

    single = await client.get(partner_apps_url(tenant, offered.id), headers=tenant.headers)
    assert single.status_code == 200 and set(single.json()) == PARTNER_APP_ATTRIBUTES
    for invisible in (private.id, shared_elsewhere.id, not_a_partner.id, own.id, uuid.uuid4()):
        missing = await client.get(partner_apps_url(tenant, invisible), headers=tenant.headers)
        assert missing.status_code == 404
        assert missing.json() == {"detail": "No partner app found with the given ID."}
    # The partnership is symmetric: the other side sees nothing of ours that is not offered.
    reverse = await client.get(partner_apps_url(other_tenant), headers=other_tenant.headers)
    assert [item["id"] for item in reverse.json()["results"]] == [str(own.id)]


async def test_installed_apps_list_only_this_organizations_installations(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    public = await make_app(
        session,
        other_tenant.organization,
        name="Public",
        is_available_to_anyone=True,
        is_approved=True,
        trigger_conditions=["chat_start", "install"],
    )
    elsewhere = await make_app(session, other_tenant.organization, name="Installed elsewhere")
    await install_via_api(client, tenant, public.id)
    await install_via_api(client, other_tenant, public.id)
    await install_via_api(client, other_tenant, elsewhere.id)

    response = await client.get(installed_apps_url(tenant), headers=tenant.headers)

    results = response.json()["results"]
    assert [item["id"] for item in results] == [str(public.id)]
    assert set(results[0]) == INSTALLED_APP_ATTRIBUTES
    assert results[0]["trigger_conditions"] == ["chat_start", "install"]
    assert results[0]["installation_count"] == 2
    single = await client.get(installed_apps_url(tenant, public.id), headers=tenant.headers)
    assert single.status_code == 200 and single.json() == results[0]
    for invisible in (elsewhere.id, uuid.uuid4()):
        missing = await client.get(installed_apps_url(tenant, invisible), headers=tenant.headers)
        assert missing.status_code == 404
        assert missing.json() == {"detail": "No installed app found with the given ID."}


async def test_lists_need_settings_permission_and_own_organization(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    reader = await make_tenant(session, name="Reader", permissions=["reports"])
    for url in (partner_apps_url(reader), installed_apps_url(reader), owned_url(reader)):
        assert (await client.get(url, headers=reader.headers)).status_code == 403
    for url in (partner_apps_url(other_tenant), installed_apps_url(other_tenant), owned_url(other_tenant)):
        assert (await client.get(url, headers=tenant.headers)).status_code == 403
        assert (await client.get(url)).status_code == 401


def _schema_properties(schema: dict[str, Any], components: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name reachable from an OpenAPI schema."""
    names: set[str] = set()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return names
        seen.add(name)
        return _schema_properties(components[name], components, seen)
    for key, value in schema.get("properties", {}).items():
        names.add(key)
        names |= _schema_properties(value, components, seen)
    for combinator in ("anyOf", "allOf", "oneOf"):
        for option in schema.get(combinator, []):
            names |= _schema_properties(option, components, seen)
    if "items" in schema:
        names |= _schema_properties(schema["items"], components, seen)
    return names


def _model_fields(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for candidate in _nested_models(field.annotation):
            if candidate not in seen:
                names |= _model_fields(candidate, seen)
    return names


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in getattr(annotation, "__args__", ()) or ():
        found += _nested_models(argument)
    for meta in getattr(annotation, "__metadata__", ()) or ():
        found += _nested_models(meta)
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        found += _nested_models(origin)
    return found


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        keys = set(value)
        for item in value.values():
            keys |= _keys(item)
        return keys
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value)) if value else set()
    return set()


async def test_secret_appears_in_the_owned_view_only(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    # The models.
    for view in (PublicApp, PartnerApp, InstalledApp, AppShare, AppInstallation, OwnedAppInstallation):
        assert "secret" not in _model_fields(view), view.__name__
    assert "secret" in _model_fields(OwnedApp)

    # The OpenAPI document: exactly the owned-app operations' success responses carry it.
    schema = create_app().openapi()
    components = schema["components"]["schemas"]
    exposing = set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                body = response.get("content", {}).get("application/json", {}).get("schema")
                if body is not None and "secret" in _schema_properties(body, components, set()):
                    exposing.add((method.upper(), path, status))
    owned = "/api/v5/orgs/{organization_id}/owned_apps"
    assert exposing == {
        ("GET", owned, "200"),
        ("POST", owned, "201"),
        ("GET", owned + "/{app_id}", "200"),
        ("PUT", owned + "/{app_id}", "200"),
        ("PATCH", owned + "/{app_id}", "200"),
        ("POST", owned + "/{app_id}/rotate_secret", "200"),
    }

    # The responses themselves.
    await partners(session, tenant, other_tenant)
    app = await partner_app(session, other_tenant, is_available_to_anyone=True, is_approved=True)
    secret = app.secret
    installed = await install_via_api(client, tenant, app.id)
    await share(session, app, tenant)
    other_views = [
        "/api/v5/public_apps",
        f"/api/v5/public_apps/{app.id}",
        partner_apps_url(tenant),
        partner_apps_url(tenant, app.id),
        installed_apps_url(tenant),
        installed_apps_url(tenant, app.id),
        installations_url(tenant),
        installations_url(tenant, installed["id"]),
    ]
    for url in other_views:
        response = await client.get(url, headers=tenant.headers)
        assert response.status_code == 200, url
        assert "secret" not in _keys(response.json()), url
        assert secret not in response.text, url
    owner_views = [
        owned_url(other_tenant, app.id, "/installations"),
        owned_url(other_tenant, app.id, f"/installations/{installed['id']}"),
        owned_url(other_tenant, app.id, "/shares"),
    ]
    for url in owner_views:
        response = await client.get(url, headers=other_tenant.headers)
        assert response.status_code == 200, url
        assert "secret" not in _keys(response.json()), url
    owned = await client.get(owned_url(other_tenant, app.id), headers=other_tenant.headers)
    assert owned.json()["secret"] == secret


async def test_keyset_pages_stay_correct_while_rows_are_inserted(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    await partners(session, tenant, other_tenant)
    apps = [
        await partner_app(session, other_tenant, name=f"App {index}", created_at=minutes_ago(60 - index))
        for index in range(5)
    ]
    newest_first = [str(app.id) for app in reversed(apps)]

    first = (await client.get(partner_apps_url(tenant) + "?page_size=2", headers=tenant.headers)).json()
    assert [item["id"] for item in first["results"]] == newest_first[:2]
    # Rows arrive between page fetches: a newer one and one in the middle of what is left.
    newer = await partner_app(session, other_tenant, name="Newer")
    middle = await partner_app(session, other_tenant, name="Middle", created_at=minutes_ago(57.5))
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    third = (await client.get(second["next"], headers=tenant.headers)).json()

    walked = [item["id"] for page in (first, second, third) for item in page["results"]]
    assert str(newer.id) not in walked  # It sorts before the cursor: never repeats or shifts pages.
    assert walked == [*newest_first[:2], str(middle.id), *newest_first[2:]]
    assert len(walked) == len(set(walked))
    assert third["next"] is None
    back = (await client.get(second["previous"], headers=tenant.headers)).json()
    assert [item["id"] for item in back["results"]] == newest_first[:2]
    assert back["previous"] is not None  # The newer row is now ahead of the first page.
