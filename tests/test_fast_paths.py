"""Fast paths (kit/fastpath.py) answer only what their routes answer, byte for byte.

Every request below is sent twice, with fast paths on and off (the declared route alone);
status, content type and body must be the same. Plain requests must be answered by the fast
path, and everything unusual (credentials, access, parameters) must be left to the route.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit import fastpath
from apps_api.models import ApiToken, Organization
from apps_api.models.base import utcnow
from apps_api.observability.metrics import REGISTRY
from tests.apps_helpers import (
    app_payload,
    create_app_via_api,
    install_via_api,
    installation_count,
    installations_url,
    owned_url,
)
from tests.factories import Tenant, make_app, make_log_entry, make_tenant, make_user

PUBLIC = "/api/v5/public_apps"
OWNED = "/api/v5/orgs/{org}/owned_apps"
LOG = "/api/v5/orgs/{org}/owned_apps/{app}/webhook_log_entries"
ROUTES = {
    PUBLIC: "/api/v5/public_apps",
    OWNED: "/api/v5/orgs/{organization_id}/owned_apps",
    LOG: "/api/v5/orgs/{organization_id}/owned_apps/{app_id}/webhook_log_entries",
}


def _count(route: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "apps_api_fast_path_requests_total", {"route": route, "outcome": outcome}
    )
    return value or 0.0


async def _send_both(
    client: httpx.AsyncClient, app: Any, template: str, url: str, headers: dict[str, str]
) -> tuple[httpx.Response, bool]:
    """The response (the same with fast paths on and off) and whether the fast path answered it."""
    route = ROUTES[template]
    answered = _count(route, "answered")
    fast = await client.get(url, headers=headers)
    fast_answered = _count(route, "answered") > answered
    connections = app.state.fast_path_connections
    fastpath.enable(app.state, None)
    try:
        declared = await client.get(url, headers=headers)
    finally:
        fastpath.enable(app.state, connections)
    assert (fast.status_code, fast.headers["content-type"], fast.content) == (
        declared.status_code,
        declared.headers["content-type"],
        declared.content,
    ), url
    return fast, fast_answered


@pytest.fixture
async def data(session: AsyncSession, tenant: Tenant) -> dict[str, Any]:
    now = utcnow()
    apps = [
        await make_app(
            session,
            tenant.organization,
            name=f"App {number}",
            is_available_to_anyone=number % 2 == 0,
            is_approved=number % 2 == 0,
            created_at=now - timedelta(seconds=number),
        )
        for number in range(5)
    ]
    for number in range(4):
        await make_log_entry(
            session,
            app_id=apps[0].id,
            organization_id=tenant.org_id,
            resource_id=f"r{number}",
            completed_at=now - timedelta(seconds=number),
        )
    return {"app": apps[0].id}


def _url(template: str, tenant: Tenant, data: dict[str, Any], query: str = "") -> str:
    return template.format(org=tenant.org_id, app=data["app"]) + query


@pytest.mark.parametrize("template", [PUBLIC, OWNED, LOG])
async def test_plain_pages_are_answered_fast_and_as_declared(
    client: httpx.AsyncClient, app: Any, tenant: Tenant, data: dict[str, Any], template: str
) -> None:
    headers = tenant.headers
    first, answered = await _send_both(
        client, app, template, _url(template, tenant, data, "?page_size=2"), headers
    )
    assert first.status_code == 200 and answered
    assert len(first.json()["results"]) == 2 and first.json()["next"]
    second_url = first.json()["next"].split("testserver", 1)[-1]
    second, answered = await _send_both(client, app, template, second_url, headers)
    assert answered and second.json()["previous"]
    back, answered = await _send_both(
        client, app, template, second.json()["previous"].split("testserver", 1)[-1], headers
    )
    assert answered and back.json() == first.json()
    for query in ("", "?ordering=created_at", "?page_size=100&ordering=-created_at"):
        response, answered = await _send_both(
            client, app, template, _url(template, tenant, data, query), headers
        )
        assert response.status_code == 200 and answered, query
    bearer = {"Authorization": f"bearer   {tenant.token} "}
    response, answered = await _send_both(client, app, template, _url(template, tenant, data), bearer)
    assert response.status_code == 200 and answered


@pytest.mark.parametrize("template", [PUBLIC, OWNED, LOG])
async def test_unusual_parameters_are_left_to_the_route(
    client: httpx.AsyncClient, app: Any, tenant: Tenant, data: dict[str, Any], template: str
) -> None:
    first = await client.get(_url(template, tenant, data, "?page_size=1"), headers=tenant.headers)
    other_ordering_cursor = first.json()["next"].split("cursor=", 1)[1]
    for query in (
        "?page_size=0",
        "?page_size=101",
        "?page_size=abc",
        "?page_size=05",
        "?page_size=%2B5",
        "?page_size=",
        "?page_size=2&page_size=3",
        "?ordering=name",
        "?cursor=",
        "?cursor=bm90LWEtY3Vyc29y",
        f"?ordering=created_at&cursor={other_ordering_cursor}",
        "?unknown=1",
    ):
        response, answered = await _send_both(
            client, app, template, _url(template, tenant, data, query), tenant.headers
        )
        assert not answered, query
        assert response.status_code in (200, 400), query


@pytest.mark.parametrize("template", [PUBLIC, OWNED, LOG])
async def test_refused_callers_are_left_to_the_route(
    client: httpx.AsyncClient,
    app: Any,
    session: AsyncSession,
    tenant: Tenant,
    other_tenant: Tenant,
    data: dict[str, Any],
    template: str,
) -> None:
    url = _url(template, tenant, data)
    _, no_settings = await make_user(session, tenant.organization, permissions=["users"])
    _, expired_token = await make_user(
        session, tenant.organization, token_expires_at=utcnow() - timedelta(seconds=1)
    )
    lapsed = await make_tenant(session, name="Lapsed")
    await session.execute(
        update(Organization).where(Organization.id == lapsed.org_id).values(subscription_active=False)
    )
    revoked, revoked_token = await make_user(session, tenant.organization)
    await session.execute(update(ApiToken).where(ApiToken.user_id == revoked.id).values(revoked_at=utcnow()))
    await session.flush()
    cases = {
        "no credentials": ({}, 401),
        "unknown key": ({"Authorization": "Token nope"}, 401),
        "two words": ({"Authorization": f"Token {tenant.token} x"}, 401),
        "other scheme": ({"Authorization": f"Basic {tenant.token}"}, 401),
        "app scheme": ({"Authorization": f"GIOSGAPP {tenant.token} secret"}, 401),
        "expired": ({"Authorization": f"Token {expired_token}"}, 401),
        "revoked": ({"Authorization": f"Token {revoked_token}"}, 401),
        "no settings permission": ({"Authorization": f"Token {no_settings}"}, 403),
        "no subscription": (lapsed.headers, 403),
    }
    if template != PUBLIC:
        cases["another organization"] = (other_tenant.headers, 403)
    for name, (headers, status) in cases.items():
        response, answered = await _send_both(client, app, template, url, headers)
        assert (response.status_code, answered) == (status, False), name


async def test_paths_the_route_would_refuse_are_left_to_it(
    client: httpx.AsyncClient,
    app: Any,
    tenant: Tenant,
    other_tenant: Tenant,
    data: dict[str, Any],
    session: AsyncSession,
) -> None:
    foreign = await make_app(session, other_tenant.organization)
    for url, status in (
        (LOG.format(org=tenant.org_id, app=uuid.uuid4()), 404),
        (LOG.format(org=tenant.org_id, app=foreign.id), 404),
        (LOG.format(org=tenant.org_id, app=data["app"].hex), 200),
        (LOG.format(org=tenant.org_id, app="not-a-uuid"), 400),
        (OWNED.format(org=str(tenant.org_id).upper()), 200),
        (OWNED.format(org=tenant.org_id.hex), 200),
        (OWNED.format(org="{" + str(tenant.org_id) + "}"), 200),
        (LOG.format(org=tenant.org_id, app=data["app"]) + "?status=successful", 200),
    ):
        template = LOG if "webhook_log_entries" in url else OWNED
        response, _ = await _send_both(client, app, template, url, tenant.headers)
        assert response.status_code == status, url


async def test_a_database_error_is_answered_by_the_route(
    client: httpx.AsyncClient, app: Any, tenant: Tenant
) -> None:
    """A fast path that fails declines; the route answers (here, with the rows)."""

    class Broken:
        async def fetch(self, *args: object) -> None:
            raise OSError("connection reset")

    connections = app.state.fast_path_connections
    fastpath.enable(app.state, lambda: fastpath.borrowed(Broken()))
    declined = _count(ROUTES[PUBLIC], "declined")
    try:
        response = await client.get(PUBLIC, headers=tenant.headers)
    finally:
        fastpath.enable(app.state, connections)
    assert response.status_code == 200
    assert _count(ROUTES[PUBLIC], "declined") == declined + 1


# --- writes (create an owned app, install an app) --------------------------------------------


async def _post_both(
    client: httpx.AsyncClient, app: Any, route: str, url: str, headers: dict[str, str], content: bytes
) -> httpx.Response:
    """A refused POST: the same response with fast paths on and off, and the fast path declined it."""
    declined = _count(route, "declined")
    headers = {"content-type": "application/json", **headers}
    fast = await client.post(url, content=content, headers=headers)
    assert _count(route, "declined") == declined + 1, (url, content)
    connections = app.state.fast_path_connections
    fastpath.enable(app.state, None)
    try:
        declared = await client.post(url, content=content, headers=headers)
    finally:
        fastpath.enable(app.state, connections)
    assert (fast.status_code, fast.content) == (declared.status_code, declared.content), (url, content)
    return fast


CREATE = "/api/v5/orgs/{organization_id}/owned_apps"
INSTALL = "/api/v5/orgs/{organization_id}/app_installations"


async def test_plain_writes_are_answered_fast_and_read_back_the_same(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    answered = _count(CREATE, "answered")
    created = await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)
    assert created.status_code == 201 and _count(CREATE, "answered") == answered + 1
    retrieved = await client.get(owned_url(tenant, created.json()["id"]), headers=tenant.headers)
    assert retrieved.content == created.content

    answered = _count(INSTALL, "answered")
    installed = await client.post(
        installations_url(tenant), json={"app_id": created.json()["id"]}, headers=tenant.headers
    )
    assert installed.status_code == 201 and _count(INSTALL, "answered") == answered + 1
    retrieved = await client.get(installations_url(tenant, installed.json()["id"]), headers=tenant.headers)
    assert retrieved.content == installed.content


async def test_refused_writes_are_left_to_the_route_and_leave_nothing_behind(
    client: httpx.AsyncClient, app: Any, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    _, no_settings = await make_user(session, tenant.organization, permissions=["users"])
    without_apps = await make_tenant(session, name="No apps", features=[])
    valid = json.dumps(app_payload()).encode()
    for headers, content in (
        ({}, valid),
        ({"Authorization": f"Token {no_settings}"}, valid),
        (other_tenant.headers, valid),
        (tenant.headers, b"{not json"),
        (tenant.headers, b""),
        (tenant.headers, json.dumps(app_payload(name="")).encode()),
        (tenant.headers, json.dumps({"name": "only a name"}).encode()),
        # Valid input the service refuses after the body was read (402: no App provider feature).
        (without_apps.headers, json.dumps(app_payload(is_available_to_anyone=True)).encode()),
    ):
        url = owned_url(without_apps if headers is without_apps.headers else tenant)
        await _post_both(client, app, CREATE, url, headers, content)
    listed = await client.get(owned_url(without_apps), headers=without_apps.headers)
    assert listed.json()["results"] == []

    mine = await create_app_via_api(client, tenant)
    foreign = await make_app(session, other_tenant.organization)
    await install_via_api(client, tenant, mine["id"])
    for organization, content in (
        (tenant, json.dumps({"app_id": str(foreign.id)}).encode()),  # 404: not installable
        (tenant, json.dumps({"app_id": mine["id"]}).encode()),  # 409: already installed
        (tenant, json.dumps({"app_id": "nope"}).encode()),  # 400
        (tenant, json.dumps({"app_id": mine["id"], "allowed_scopes": "x"}).encode()),  # 400
        (without_apps, json.dumps({"app_id": str(foreign.id)}).encode()),  # 403: no Apps feature
    ):
        await _post_both(client, app, INSTALL, installations_url(organization), organization.headers, content)
    assert await installation_count(session, mine["id"]) == 1
