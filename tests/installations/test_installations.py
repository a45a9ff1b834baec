"""App installations, owned app installations, app users: the API and the service underneath."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.installations import service
from apps_api.kit.errors import Conflict
from apps_api.models import ApiToken, App, AppInstallation, Event, Organization, User
from apps_api.platform import service as platform
from tests.fixtures.apps import (
    actual_installations,
    events,
    install_via_api,
    installation_count,
    installations_url,
    owned_url,
    partner_app,
    partners,
)
from tests.fixtures.factories import Tenant, make_app, make_tenant

INSTALLATION_ATTRIBUTES = {
    "id",
    "organization_id",
    "organization",
    "app_id",
    "app",
    "app_user_id",
    "app_user",
    "allowed_scopes",
    "created_at",
    "updated_at",
}


async def _bot_app(session: AsyncSession, owner: Tenant, **attributes: Any) -> App:
    values: dict[str, Any] = {
        "is_available_to_anyone": True,
        "is_approved": True,
        "is_app_user_required": True,
        "app_user_default_first_name": "Chatty",
        "app_user_default_last_name": "Bot",
        "app_user_default_alias": "chatty",
        "required_scopes": ["reports"],
    }
    values.update(attributes)
    return await make_app(session, owner.organization, **values)


async def test_install_creates_installation_and_bot_user(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await _bot_app(session, other_tenant, trigger_conditions=["install"])

    response = await client.post(
        installations_url(tenant),
        json={
            "app_id": str(app.id),
            "allowed_scopes": ["users", "reports"],
            "app_user": {"last_name": "Helper"},
        },
        headers=tenant.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == INSTALLATION_ATTRIBUTES
    assert body["organization"] == {"id": str(tenant.org_id), "name": "Acme"}
    assert body["app_id"] == str(app.id)
    assert body["app"]["id"] == str(app.id) and body["app"]["trigger_conditions"] == ["install"]
    assert body["app"]["installation_count"] == 1
    assert body["allowed_scopes"] == ["reports", "users"]
    user = body["app_user"]
    assert body["app_user_id"] == user["id"]
    assert user["first_name"] == "Chatty" and user["last_name"] == "Helper" and user["alias"] == "chatty"
    assert user["is_bot"] is True and user["organization_id"] == str(tenant.org_id)
    stored = await session.get(User, uuid.UUID(user["id"]))
    assert stored is not None
    assert stored.permissions == [] and stored.email is None and stored.password_hash is None

    assert await installation_count(session, app.id) == 1
    listed = await client.get(installations_url(tenant), headers=tenant.headers)
    assert listed.json()["results"] == [body]
    fetched = await client.get(installations_url(tenant, body["id"]), headers=tenant.headers)
    assert fetched.json() == body


async def test_install_without_app_user_and_default_scopes(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization, required_scopes=["settings", "users"])
    body = await install_via_api(client, tenant, app.id, app_user={"first_name": "Ignored"})
    assert body["app_user"] is None and body["app_user_id"] is None
    assert body["allowed_scopes"] == ["settings", "users"]


async def test_second_install_is_409(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    await install_via_api(client, tenant, app.id)

    again = await client.post(installations_url(tenant), json={"app_id": str(app.id)}, headers=tenant.headers)

    assert again.status_code == 409
    assert again.json() == {"detail": "The app is already installed in this organization."}
    assert await installation_count(session, app.id) == 1


async def test_refusals(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    private = await make_app(session, other_tenant.organization)
    unapproved = await make_app(session, other_tenant.organization, is_available_to_anyone=True)
    not_partner = await partner_app(session, other_tenant)
    for app_id in (private.id, unapproved.id, not_partner.id, uuid.uuid4()):
        response = await client.post(
            installations_url(tenant), json={"app_id": str(app_id)}, headers=tenant.headers
        )
        assert response.status_code == 404
        assert response.json() == {"detail": "No installable app found with the given ID."}

    scoped = await _bot_app(session, other_tenant, required_scopes=["reports", "users"])
    uncovered = await client.post(
        installations_url(tenant),
        json={"app_id": str(scoped.id), "allowed_scopes": ["reports"]},
        headers=tenant.headers,
    )
    assert uncovered.status_code == 400
    assert uncovered.json()["errors"] == {
        "allowed_scopes": ["Must include the app's required scopes: users."]
    }
    unknown = await client.post(
        installations_url(tenant),
        json={"app_id": str(scoped.id), "allowed_scopes": ["reports", "users", "root"]},
        headers=tenant.headers,
    )
    assert unknown.status_code == 400 and "root" in unknown.json()["errors"]["allowed_scopes"][0]
    blank = await client.post(
        installations_url(tenant),
        json={"app_id": str(scoped.id), "app_user": {"first_name": " ", "alias": ""}},
        headers=tenant.headers,
    )
    assert blank.status_code == 400
    assert blank.json()["errors"] == {
        "app_user.first_name": ["This field may not be blank."],
        "app_user.alias": ["This field may not be blank."],
    }
    missing_app = await client.post(installations_url(tenant), json={}, headers=tenant.headers)
    assert missing_app.status_code == 400 and list(missing_app.json()["errors"]) == ["app_id"]
    assert await installation_count(session, scoped.id) == 0

    no_feature = await make_tenant(session, name="No apps feature", features=["app_provider"])
    refused = await client.post(
        installations_url(no_feature), json={"app_id": str(scoped.id)}, headers=no_feature.headers
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "Your organization does not have the Apps feature; "
        "the operator of this service can enable it."
    }
    reader = await make_tenant(session, name="Reader", permissions=["reports"])
    assert (
        await client.post(installations_url(reader), json={"app_id": str(scoped.id)}, headers=reader.headers)
    ).status_code == 403


async def test_partner_installs_offered_and_shared_apps(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    await partners(session, tenant, other_tenant)
    offered = await partner_app(session, other_tenant)
    shared = await make_app(session, other_tenant.organization)
    await client.post(
        owned_url(other_tenant, shared.id, "/shares"),
        json={"organization_id": str(tenant.org_id)},
        headers=other_tenant.headers,
    )
    for app in (offered, shared):
        await install_via_api(client, tenant, app.id)
    assert await installation_count(session, shared.id) == 1


async def test_uninstall_retires_the_app_user_and_its_tokens(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await _bot_app(session, other_tenant)
    installed = await install_via_api(client, tenant, app.id)
    app_user_id = uuid.UUID(installed["app_user_id"])
    _, key = await platform.create_token(
        session=session, user_id=app_user_id, app_installation_id=uuid.UUID(installed["id"])
    )
    app_user_headers = {"Authorization": f"Token {key}"}
    # The bot has no `settings` permission, but its token authenticates: 403, not 401.
    before = await client.get(installations_url(tenant), headers=app_user_headers)
    assert before.status_code == 403

    response = await client.delete(installations_url(tenant, installed["id"]), headers=tenant.headers)

    assert response.status_code == 204 and response.content == b""
    after = await client.get(installations_url(tenant), headers=app_user_headers)
    assert after.status_code == 401
    user = await session.get(User, app_user_id, populate_existing=True)
    assert user is not None and user.deleted_at is not None
    tokens = (await session.scalars(select(ApiToken).where(ApiToken.user_id == app_user_id))).all()
    assert tokens and all(token.revoked_at is not None for token in tokens)
    assert await installation_count(session, app.id) == 0
    assert (
        await client.get(installations_url(tenant, installed["id"]), headers=tenant.headers)
    ).status_code == 404
    gone = await client.delete(installations_url(tenant, installed["id"]), headers=tenant.headers)
    assert gone.status_code == 404
    # Reinstalling afterwards gives a fresh installation and a fresh app user.
    again = await install_via_api(client, tenant, app.id)
    assert again["app_user_id"] != installed["app_user_id"]


async def test_foreign_installation_is_404(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await make_app(session, other_tenant.organization)
    installed = await install_via_api(client, other_tenant, app.id)
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, installations_url(tenant, installed["id"]), headers=tenant.headers
        )
        assert response.status_code == 404
        assert response.json() == {"detail": "No app installation found with the given ID."}
    assert await installation_count(session, app.id) == 1


async def test_owner_sees_and_uninstalls_installations(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await _bot_app(session, tenant)
    third = await make_tenant(session, name="Third")
    first = await install_via_api(client, other_tenant, app.id)
    second = await install_via_api(client, third, app.id)
    url = owned_url(tenant, app.id, "/installations")

    listed = await client.get(url, headers=tenant.headers)

    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [item["id"] for item in results] == [second["id"], first["id"]]
    assert all(set(item) == INSTALLATION_ATTRIBUTES for item in results)
    assert results[1]["organization"] == {"id": str(other_tenant.org_id), "name": "Globex"}
    assert results[1]["app_user"]["first_name"] == "Chatty"
    single = await client.get(f"{url}/{first['id']}", headers=tenant.headers)
    assert single.json() == results[1]
    # Others see neither the app's installations nor can they uninstall it.
    assert (
        await client.get(owned_url(other_tenant, app.id, "/installations"), headers=other_tenant.headers)
    ).status_code == 404
    foreign = await client.delete(
        owned_url(other_tenant, app.id, f"/installations/{third.org_id}"), headers=other_tenant.headers
    )
    assert foreign.status_code == 404

    removed = await client.delete(f"{url}/{other_tenant.org_id}", headers=tenant.headers)

    assert removed.status_code == 204
    assert (await client.get(f"{url}/{first['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"{url}/{other_tenant.org_id}", headers=tenant.headers)).json() == {
        "detail": "The app is not installed in the given organization."
    }
    assert [item["id"] for item in (await client.get(url, headers=tenant.headers)).json()["results"]] == [
        second["id"]
    ]
    assert await installation_count(session, app.id) == 1
    owner_events = await events(session, organization_id=tenant.org_id, action="removed")
    assert [event.resource_id for event in owner_events] == [first["id"]]


async def test_events_of_install_and_uninstall(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await _bot_app(session, other_tenant)
    installed = await install_via_api(client, tenant, app.id)
    user_id = installed["app_user_id"]
    org = tenant.org_id

    orgs = [tenant.org_id, other_tenant.org_id]
    added = await events(session, organizations=orgs, action="added")
    assert [(event.organization_id, event.channel, event.resource_id) for event in added] == [
        (org, f"/api/v5/orgs/{org}/app_installations", installed["id"]),
        (org, f"/api/v5/orgs/{org}/installed_apps", str(app.id)),
        (
            other_tenant.org_id,
            f"/api/v5/orgs/{other_tenant.org_id}/owned_apps/{app.id}/installations",
            installed["id"],
        ),
        (org, f"/api/v5/orgs/{org}/users", user_id),
    ]
    assert added[0].resource == installed
    assert added[1].resource == installed["app"]
    assert added[2].resource == installed  # The owner's view has the same attributes.
    assert added[3].resource == installed["app_user"]
    assert all(event.actor_user_id == tenant.user.id for event in added)

    await client.delete(installations_url(tenant, installed["id"]), headers=tenant.headers)
    removed = await events(session, organizations=orgs, action="removed")
    assert [(event.channel, event.resource_id) for event in removed] == [
        (event.channel, event.resource_id) for event in added
    ]
    assert removed[0].resource["id"] == installed["id"]
    assert all(event.actor_user_id == tenant.user.id for event in removed)


async def test_installation_count_is_stored_not_counted(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    orgs = [await make_tenant(session, name=f"Org {index}") for index in range(3)]
    app = await _bot_app(session, tenant)
    installed = [await install_via_api(client, org, app.id) for org in orgs]
    await client.delete(installations_url(orgs[1], installed[1]["id"]), headers=orgs[1].headers)
    assert await installation_count(session, app.id) == 2 == await actual_installations(session, app.id)

    # Views read the maintained column: a COUNT would not show this value.
    await session.execute(update(App).where(App.id == app.id).values(installation_count=41))
    await session.flush()
    public = await client.get(f"/api/v5/public_apps/{app.id}", headers=tenant.headers)
    assert public.json()["installation_count"] == 41
    await install_via_api(client, tenant, app.id)
    assert await installation_count(session, app.id) == 42


async def test_failure_half_way_leaves_nothing(
    app: Any,
    client: httpx.AsyncClient,
    session: AsyncSession,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asgi_app = app
    bot_app = await _bot_app(session, tenant)
    events_before = len(await events(session, organizations=[tenant.org_id]))

    async def broken(**_: Any) -> User:
        raise RuntimeError("app user store is down")

    monkeypatch.setattr(service, "_create_app_user", broken)
    with pytest.raises(RuntimeError):
        await service.install_app(
            granter=None, session=session, organization=tenant.organization, app=bot_app, actor=tenant.user
        )

    # The installation row was flushed before the failure; the savepoint took it back.
    assert await actual_installations(session, bot_app.id) == 0
    assert await installation_count(session, bot_app.id) == 0
    assert len(await events(session, organizations=[tenant.org_id])) == events_before
    # The same through the API: a 500 and nothing committed.
    transport = httpx.ASGITransport(app=asgi_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as failing:
        response = await failing.post(
            installations_url(tenant), json={"app_id": str(bot_app.id)}, headers=tenant.headers
        )
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert await actual_installations(session, bot_app.id) == 0
    monkeypatch.undo()
    assert (await install_via_api(client, tenant, bot_app.id))["app_user"] is not None


async def test_concurrent_installs_exactly_one_wins(engine: AsyncEngine) -> None:
    """Two real transactions on two connections, committed: the unique constraint decides."""
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        owner = await make_tenant(setup, name="Concurrent owner")
        installer = await make_tenant(setup, name="Concurrent installer")
        app = await _bot_app(setup, owner)
        await setup.commit()
    org_ids = [owner.org_id, installer.org_id]
    try:

        async def attempt() -> str:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                organization = await session.get(Organization, installer.org_id)
                found = await service.find_installable_app(
                    session=session, organization_id=installer.org_id, app_id=app.id
                )
                assert organization is not None and found is not None
                try:
                    await service.install_app(
                        granter=None, session=session, organization=organization, app=found, actor=None
                    )
                    await session.commit()
                    return "installed"
                except Conflict:
                    await session.rollback()
                    return "conflict"

        outcomes = await asyncio.gather(attempt(), attempt())

        assert sorted(outcomes) == ["conflict", "installed"]
        async with AsyncSession(engine) as check:
            rows = (
                await check.scalars(select(AppInstallation).where(AppInstallation.app_id == app.id))
            ).all()
            assert len(rows) == 1
            assert await check.scalar(select(App.installation_count).where(App.id == app.id)) == 1
            bots = (
                await check.scalars(select(User).where(User.organization_id == installer.org_id, User.is_bot))
            ).all()
            assert len(bots) == 1  # The loser's app user was rolled back with it.
    finally:
        async with AsyncSession(engine) as cleanup:
            await cleanup.execute(delete(Event).where(Event.organization_id.in_(org_ids)))
            await cleanup.execute(delete(Organization).where(Organization.id.in_(org_ids)))
            await cleanup.commit()


async def _uninstall_state(
    session: AsyncSession, installation_id: uuid.UUID, app_id: uuid.UUID
) -> dict[str, Any]:
    """What an uninstall changes, read straight from the database (not from the session's objects)."""
    from sqlalchemy import text

    queries = {
        "installation": "SELECT count(*) FROM app_installations WHERE id = :installation",
        "count": "SELECT installation_count FROM apps WHERE id = :app",
        "events": "SELECT count(*) FROM events",
        "deliveries": "SELECT count(*) FROM outbound_deliveries WHERE app_id = :app",
        "app user deleted": (
            "SELECT count(*) FROM users u JOIN app_installations i ON i.app_user_id = u.id "
            "WHERE i.id = :installation AND u.deleted_at IS NOT NULL"
        ),
        "live tokens": (
            "SELECT count(*) FROM api_tokens t JOIN app_installations i ON i.app_user_id = t.user_id "
            "WHERE i.id = :installation AND t.revoked_at IS NULL"
        ),
    }
    values = {"installation": installation_id, "app": app_id}
    return {name: (await session.execute(text(sql), values)).scalar() for name, sql in queries.items()}


async def test_uninstall_failing_half_way_leaves_everything_installed(
    app: Any,
    client: httpx.AsyncClient,
    session: AsyncSession,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure after the events, the uninstall trigger, the token revocation and the app user's
    deletion were written (at the counter update) takes all of them back: one savepoint."""
    asgi_app = app
    bot_app = await _bot_app(
        session, tenant, trigger_url="https://hooks.example.com/trigger", trigger_conditions=["uninstall"]
    )
    installed = await install_via_api(client, tenant, bot_app.id)
    installation_id = uuid.UUID(installed["id"])
    _, _key = await platform.create_token(
        session=session, user_id=uuid.UUID(installed["app_user"]["id"]), app_installation_id=installation_id
    )
    before = await _uninstall_state(session, installation_id, bot_app.id)
    assert before["installation"] == 1 and before["count"] == 1 and before["live tokens"] == 1
    assert before["app user deleted"] == 0

    real_count = service._add_to_installation_count

    async def broken(**_: Any) -> int:
        # Everything before the counter is written by now: prove it, then fail.
        mid = await _uninstall_state(session, installation_id, bot_app.id)
        assert mid["events"] > before["events"] and mid["deliveries"] == before["deliveries"] + 1
        assert mid["live tokens"] == 0
        raise RuntimeError("counter store is down")

    monkeypatch.setattr(service, "_add_to_installation_count", broken)
    installation = await session.get(AppInstallation, installation_id)
    assert installation is not None
    with pytest.raises(RuntimeError, match="counter store is down"):
        await service.uninstall(session=session, installation=installation, actor_user_id=tenant.user.id)
    assert await _uninstall_state(session, installation_id, bot_app.id) == before

    # The same through the API: a 500 and nothing changed.
    transport = httpx.ASGITransport(app=asgi_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as failing:
        response = await failing.delete(installations_url(tenant, installation_id), headers=tenant.headers)
    assert response.status_code == 500 and response.json() == {"detail": "Internal server error."}
    assert await _uninstall_state(session, installation_id, bot_app.id) == before

    # Repaired, the same uninstall goes through.
    monkeypatch.setattr(service, "_add_to_installation_count", real_count)
    deleted = await client.delete(installations_url(tenant, installation_id), headers=tenant.headers)
    assert deleted.status_code == 204
    after = await _uninstall_state(session, installation_id, bot_app.id)
    assert (
        after["installation"] == 0 and after["count"] == 0 and after["deliveries"] == before["deliveries"] + 1
    )
