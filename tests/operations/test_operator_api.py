"""The operator API (`/internal/v1/organizations...`, issue 25): provisioning by external id,
the service keys, and the consequences of taking a feature, a permission or a partnership away.

The first test is the issue's "done when": committed data, the real console sign-in and install
flow, a real worker process delivering the `removed` event to a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.matching import INSTALLATIONS_PATTERN
from apps_api.kit.db import engine_read_connections, engine_request_sessions
from apps_api.main import create_app
from apps_api.models import App, AppInstallation, Organization, User
from apps_api.settings import Settings
from tests.fixtures import delivery
from tests.fixtures.console import sign_in
from tests.fixtures.factories import Tenant, make_app, make_tenant
from tests.fixtures.installflow import PASSWORD, csrf_of, unique_email
from tests.fixtures.webhooks import eventually, receivers, worker

OPERATOR = "/internal/v1/organizations"


def service_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.accepted_service_keys[0]}"}


@pytest.fixture
async def committed_client(
    settings: Settings, engine: AsyncEngine, arq_pool: ArqRedis
) -> AsyncIterator[httpx.AsyncClient]:
    """The app as `serve` runs it: every request commits (a worker process sees the changes)."""
    app = create_app(settings)
    app.state.engine = engine
    app.state.request_sessions = engine_request_sessions(engine)
    app.state.read_connections = engine_read_connections(engine)
    app.state.arq = arq_pool
    transport = httpx.ASGITransport(app=app, client=("127.0.0.25", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.subprocess
async def test_provision_by_external_id_then_losing_apps_uninstalls_with_its_removed_event(
    world: delivery.World, committed_client: httpx.AsyncClient, settings: Settings
) -> None:
    client, operator = committed_client, service_headers(settings)
    provider = await world.tenant("Provider")
    app = await world.app(provider, name="Helper", required_scopes=["settings"])
    external, email = f"crm-{uuid.uuid4().hex[:8]}", unique_email("op")
    org_url = f"{OPERATOR}/{external}"
    user_url = f"{org_url}/users/person-7"
    org_state = {"name": "Customer Co", "features": []}
    user_state = {
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "permissions": [],
        "password": PASSWORD,
    }

    created = await client.put(org_url, json=org_state, headers=operator)
    assert created.status_code == 201, created.text
    organization = created.json()
    world.organization_ids.append(uuid.UUID(organization["id"]))
    assert organization["external_id"] == external and organization["features"] == []
    user = await client.put(user_url, json=user_state, headers=operator)
    assert user.status_code == 201, user.text
    assert user.json()["external_id"] == "person-7" and user.json()["has_password"] is True

    # The sync job runs again with no change: 200, the same objects, nothing rewritten.
    again = await client.put(org_url, json=org_state, headers=operator)
    assert again.status_code == 200 and again.json() == organization
    user_again = await client.put(user_url, json=user_state, headers=operator)
    assert user_again.status_code == 200 and user_again.json() == user.json()

    # Signed in without `settings`, the console's pages say what is missing.
    await sign_in(client, email, next_="/console/installed")
    refused = await client.get("/console/installed")
    assert refused.status_code == 403 and "settings" in refused.text and "your administrator" in refused.text

    granted = await client.put(org_url, json={**org_state, "features": ["apps"]}, headers=operator)
    assert granted.status_code == 200 and granted.json()["features"] == ["apps"]
    promoted = await client.put(user_url, json={**user_state, "permissions": ["settings"]}, headers=operator)
    assert promoted.status_code == 200 and promoted.json()["permissions"] == ["settings"]

    with receivers(None) as (receiver,), worker():
        await world.webhook(provider, app, receiver.url, delivery.sub(INSTALLATIONS_PATTERN))
        # The same session now lets the user in; the user installs the app through the install flow.
        assert (await client.get("/console/installed")).status_code == 200
        page = await client.get(f"/apps/{app.id}/install", params={"next": "/console/installed"})
        assert page.status_code == 200, page.text
        installed = await client.post(
            f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": "/console/installed"}
        )
        assert installed.status_code == 303, installed.text
        installation_id = await _installation_of(world.engine, uuid.UUID(organization["id"]), app.id)
        assert installation_id is not None

        # The operator takes `apps` away: the installation goes, with its `removed` event.
        taken = await client.put(org_url, json=org_state, headers=operator)
        assert taken.status_code == 200 and taken.json()["features"] == []
        assert await _installation_of(world.engine, uuid.UUID(organization["id"]), app.id) is None
        await eventually(
            lambda: _event(receiver, app.secret, "removed", installation_id) is not None, what="removed"
        )
        await world.settle()
    added = _event(receiver, app.secret, "added", installation_id)
    removed = _event(receiver, app.secret, "removed", installation_id)
    assert added is not None and removed is not None
    assert removed["channel"] == f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/installations"


async def _installation_of(
    engine: AsyncEngine, organization_id: uuid.UUID, app_id: uuid.UUID
) -> uuid.UUID | None:
    async with AsyncSession(engine) as session:
        return await session.scalar(
            select(AppInstallation.id).where(
                AppInstallation.organization_id == organization_id, AppInstallation.app_id == app_id
            )
        )


def _event(receiver: Any, secret: str, action: str, installation_id: uuid.UUID) -> dict[str, Any] | None:
    for body in delivery.verified(receiver, secret):
        if body["action"] == action and body["resource_id"] == str(installation_id):
            return body
    return None


# --- in one rolled-back transaction each ------------------------------------------------------


def _with_keys(app: Any, settings: Settings, **keys: str | None) -> None:
    app.state.settings = settings.model_copy(update=keys)


async def test_service_keys_rotate_and_the_ingestion_key_is_an_alias(
    app: Any, client: httpx.AsyncClient, settings: Settings
) -> None:
    _with_keys(app, settings, service_keys="new-key, old-key", ingest_service_key="ingest-key")
    for key in ("new-key", "old-key", "ingest-key"):
        listed = await client.get(OPERATOR, headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200, (key, listed.text)
        ingested = await client.post(
            "/internal/v1/events", json={"events": []}, headers={"Authorization": f"Bearer {key}"}
        )
        assert ingested.status_code != 401, (key, ingested.text)
    for wrong in ("Bearer retired-key", "Bearer new-key,old-key", "Token new-key", "Bearer ", ""):
        refused = await client.get(OPERATOR, headers={"Authorization": wrong})
        assert refused.status_code == 401 and refused.json() == {"detail": "A valid service key is required."}
    _with_keys(app, settings, service_keys=None, ingest_service_key=None)
    off = await client.get(OPERATOR, headers={"Authorization": "Bearer new-key"})
    assert off.status_code == 404 and "APPS_API_SERVICE_KEYS" in off.json()["detail"]


async def test_errors_and_pages_follow_the_public_api(
    client: httpx.AsyncClient, settings: Settings, session: AsyncSession
) -> None:
    headers = service_headers(settings)
    invalid = await client.put(f"{OPERATOR}/x-1", json={"name": "", "features": ["flying"]}, headers=headers)
    assert invalid.status_code == 400 and set(invalid.json()["errors"]) >= {"name", "features"}
    missing = await client.put(f"{OPERATOR}/x-1", json={"name": "No features"}, headers=headers)
    assert missing.status_code == 400 and "features" in missing.json()["errors"]
    assert (await client.get(f"{OPERATOR}/nobody", headers=headers)).status_code == 404
    assert (await client.get(f"{OPERATOR}/id:{uuid.uuid4()}", headers=headers)).status_code == 404
    assert (await client.get(f"{OPERATOR}/id:not-a-uuid", headers=headers)).status_code == 404
    reserved = await client.post(OPERATOR, json={"name": "A", "external_id": "id:1"}, headers=headers)
    assert reserved.status_code == 400 and "external_id" in reserved.json()["errors"]
    first = await client.post(OPERATOR, json={"name": "A", "external_id": "dup-ext"}, headers=headers)
    assert first.status_code == 201
    second = await client.post(OPERATOR, json={"name": "B", "external_id": "dup-ext"}, headers=headers)
    assert second.status_code == 409 and "detail" in second.json()
    org = first.json()["id"]
    email = unique_email("taken")
    made = await client.post(f"{OPERATOR}/id:{org}/users", json={"email": email}, headers=headers)
    assert made.status_code == 201, made.text
    taken = await client.put(
        f"{OPERATOR}/dup-ext/users/u2", json={"email": email, "permissions": []}, headers=headers
    )
    assert taken.status_code == 409, taken.text
    for index in range(3):
        await client.post(OPERATOR, json={"name": f"Paged {index}"}, headers=headers)
    page = await client.get(OPERATOR, params={"page_size": 2}, headers=headers)
    assert page.status_code == 200 and len(page.json()["results"]) == 2 and page.json()["next"]
    following = await client.get(page.json()["next"], headers=headers)
    assert following.status_code == 200 and following.json()["previous"]


async def test_users_tokens_and_assets(
    client: httpx.AsyncClient, settings: Settings, session: AsyncSession
) -> None:
    headers = service_headers(settings)
    org = (
        await client.put(f"{OPERATOR}/acme-9", json={"name": "Acme", "features": ["apps"]}, headers=headers)
    ).json()
    email = unique_email("tok")
    user_url = f"{OPERATOR}/acme-9/users/u-1"
    user = await client.put(user_url, json={"email": email, "permissions": ["settings"]}, headers=headers)
    assert user.status_code == 201 and user.json()["organization_id"] == org["id"]
    patched = await client.patch(user_url, json={"permissions": ["settings", "users"]}, headers=headers)
    assert patched.status_code == 200 and patched.json()["permissions"] == ["settings", "users"]
    assert patched.json()["email"] == email  # PATCH keeps what it is not given

    minted = await client.post(f"{user_url}/tokens", headers=headers)
    assert minted.status_code == 201, minted.text
    as_user = {"Authorization": f"Token {minted.json()['token']}"}
    users = await client.get(f"/api/v5/orgs/{org['id']}/users", headers=as_user)
    assert users.status_code == 200  # the `users` permission the PATCH granted
    listed = await client.get(f"{user_url}/tokens", headers=headers)
    assert [token["id"] for token in listed.json()["results"]] == [minted.json()["id"]]
    assert "token" not in listed.json()["results"][0]
    revoked = await client.delete(f"{user_url}/tokens/{minted.json()['id']}", headers=headers)
    assert revoked.status_code == 204
    assert (await client.get(f"/api/v5/orgs/{org['id']}/users", headers=as_user)).status_code == 401

    asset = await client.post(
        f"{OPERATOR}/acme-9/assets",
        json={"url": "https://cdn.example.com/i.png", "width": 64},
        headers=headers,
    )
    assert asset.status_code == 201 and asset.json()["organization_id"] == org["id"]
    assets = await client.get(f"{OPERATOR}/acme-9/assets", headers=headers)
    assert [item["id"] for item in assets.json()["results"]] == [asset.json()["id"]]
    # Numbers past the columns' bounds are the caller's 400, never the database's 500.
    for field, value in (("size", 2**63), ("width", 2**31), ("height", 10**30)):
        too_big = await client.post(
            f"{OPERATOR}/acme-9/assets",
            json={"url": "https://cdn.example.com/j.png", field: value},
            headers=headers,
        )
        assert too_big.status_code == 400, too_big.text
        assert field in too_big.text

    deleted = await client.delete(user_url, headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(user_url, headers=headers)).status_code == 404
    # The external id is free again: the next PUT makes a new user.
    reborn = await client.put(user_url, json={"email": email, "permissions": []}, headers=headers)
    assert reborn.status_code == 201 and reborn.json()["id"] != user.json()["id"]


async def test_losing_app_provider_or_a_partnership_uninstalls_where_nothing_else_allows_it(
    client: httpx.AsyncClient, settings: Settings, session: AsyncSession
) -> None:
    from apps_api.installations.service import install_app

    headers = service_headers(settings)
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    partner = await make_tenant(session, name="Partner", features=["apps"])
    public = await make_tenant(session, name="Anyone", features=["apps"])
    await client.put(f"{OPERATOR}/id:{provider.org_id}/partners/id:{partner.org_id}", headers=headers)
    again = await client.put(f"{OPERATOR}/id:{provider.org_id}/partners/id:{partner.org_id}", headers=headers)
    assert again.status_code == 200 and again.json()["id"] == str(partner.org_id)
    partners = await client.get(f"{OPERATOR}/id:{partner.org_id}/partners", headers=headers)
    assert [item["id"] for item in partners.json()["results"]] == [str(provider.org_id)]

    for_partners = await make_app(session, provider.organization, name="P", is_available_to_partners=True)
    for_anyone = await make_app(
        session, provider.organization, name="A", is_available_to_anyone=True, is_approved=True
    )

    async def install(tenant: Tenant, app: App) -> uuid.UUID:
        installed = await install_app(
            granter=None, session=session, organization=tenant.organization, app=app, actor=tenant.user
        )
        return installed.id

    partner_install = await install(partner, for_partners)
    public_install = await install(public, for_anyone)
    own_install = await install(provider, for_anyone)
    await session.commit()

    taken = await client.patch(
        f"{OPERATOR}/id:{provider.org_id}", json={"features": ["apps"]}, headers=headers
    )
    assert taken.status_code == 200 and taken.json()["features"] == ["apps"]
    remaining = set(
        (await session.scalars(select(AppInstallation.id).execution_options(populate_existing=True))).all()
    )
    assert partner_install not in remaining and public_install not in remaining
    assert own_install in remaining  # its owner may always install its own app
    apps = (await session.scalars(select(App).where(App.owned_by_organization_id == provider.org_id))).all()
    for app in apps:
        await session.refresh(app)
        assert not app.is_available_to_anyone and not app.is_available_to_partners

    # A partnership ended through the API: the shared app goes from the partner.
    await client.patch(
        f"{OPERATOR}/id:{provider.org_id}", json={"features": ["apps", "app_provider"]}, headers=headers
    )
    for_partners.is_available_to_partners = True
    await session.flush()
    shared_install = await install(partner, for_partners)
    await session.commit()
    ended = await client.delete(
        f"{OPERATOR}/id:{provider.org_id}/partners/id:{partner.org_id}", headers=headers
    )
    assert ended.status_code == 204
    assert await session.get(AppInstallation, shared_install, populate_existing=True) is None
    twice = await client.delete(
        f"{OPERATOR}/id:{provider.org_id}/partners/id:{partner.org_id}", headers=headers
    )
    assert twice.status_code == 404


async def test_admin_commands_take_the_same_path(session: AsyncSession) -> None:
    """`admin set-features` / `set-permissions` / `set-subscription` call operator.service."""
    from apps_api.cli import build_parser

    parser = build_parser()
    features = parser.parse_args(
        ["admin", "set-features", "--org", str(uuid.uuid4()), "--features", "apps,app_provider"]
    )
    assert features.features == ["apps", "app_provider"] and features.handler.__name__ == "cmd_set_features"
    none = parser.parse_args(["admin", "set-features", "--org", str(uuid.uuid4()), "--features", ""])
    assert none.features == []
    permissions = parser.parse_args(
        ["admin", "set-permissions", "--user", str(uuid.uuid4()), "--permissions", "settings,users"]
    )
    assert permissions.permissions == ["settings", "users"]
    days = parser.parse_args(["admin", "set-subscription", "--org", str(uuid.uuid4()), "--days", "30"])
    assert days.days == 30
    no_end = parser.parse_args(["admin", "set-subscription", "--org", str(uuid.uuid4()), "--no-end"])
    assert no_end.days is None

    from apps_api.operator import service

    tenant = await make_tenant(session, name="CLI Co", features=["apps"], permissions=["settings"])
    organization, removed = await service.set_features(
        session=session, organization_id=tenant.org_id, features=[]
    )
    assert organization.features == [] and removed == []
    ended = await service.set_subscription(session=session, organization_id=tenant.org_id, days=0)
    assert not ended.has_active_subscription()
    user = await service.set_permissions(session=session, user_id=tenant.user.id, permissions=["users"])
    assert user.permissions == ["users"]
    assert (await session.get(User, tenant.user.id)) is user
    assert (await session.get(Organization, tenant.org_id)) is organization
