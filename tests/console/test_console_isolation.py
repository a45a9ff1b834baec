"""The console's isolation matrix and CSRF: every console route, found on the app's router.

- another organization's user: a 404 page for anything of another organization (app, webhook,
  log entry, installation, token, share), and nothing changes;
- a user without `settings`: a 403 page on every route;
- no session: the login page on every route;
- every state-changing form: refused (403 page, nothing changed) without this session's CSRF token.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.app_user_tokens.service import mint
from apps_api.kit.routing import RouteIndex
from apps_api.models import (
    ApiToken,
    App,
    AppInstallation,
    AppShare,
    OutboundDelivery,
    Webhook,
    WebhookLogEntry,
)
from apps_api.models.base import utcnow
from apps_api.platform import service as platform
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.factories import Tenant, make_log_entry
from tests.fixtures.installflow import csrf_of, install_directly, make_bot_app, make_installer

# Pages that belong to no organization's resource (sign-in, assets, the home redirect).
PUBLIC = {
    "/console",
    "/console/",
    "/console/login",
    "/console/logout",
    "/console/_static/console.css",
    "/console/_static/console.js",
}
# Pages of the viewer's own organization (their content is the viewer's own, never a 404).
OWN = {"/console/apps", "/console/apps/new", "/console/installed", "/console/install"}


def console_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every console route but the public ones."""
    found = []
    # FastAPI wraps included routers; iter_route_contexts() flattens them with their full paths.
    for context in iter_route_contexts(app.routes):
        if isinstance(context.route, RouteIndex):  # kit/routing: it only finds the others
            continue
        if context.path.startswith("/console") and context.path not in PUBLIC:
            assert isinstance(context.route, APIRoute)
            found.extend((method, context.path) for method in sorted(set(context.methods or ()) - {"HEAD"}))
    return found


@dataclass
class World:
    owner: Tenant
    no_settings: Tenant
    stranger: Tenant
    installer: Tenant
    ids: dict[str, uuid.UUID]


@pytest.fixture
async def world(session: AsyncSession) -> World:
    owner = await make_installer(session, name="Owner", features=["apps", "app_provider"])
    stranger = await make_installer(session, name="Stranger", features=["apps", "app_provider"])
    installer = await make_installer(session, name="Installer")
    no_settings = await make_installer(session, name="Owner too", permissions=["users", "reports"])
    # The user without settings belongs to the owner's organization.
    no_settings.user.organization_id = owner.org_id
    await session.flush()
    await platform.add_partnership(session=session, a=owner.org_id, b=installer.org_id)
    app = await make_bot_app(session, owner.organization, name="Secret Sauce")
    installation = await install_directly(session, installer, app)
    token, _ = await mint(session=session, installation=installation, expires_at=None)
    # Disabled, so that a re-enable getting through would show in `_state`.
    webhook = Webhook(
        app_id=app.id,
        organization_id=owner.org_id,
        endpoint_url="https://hooks.example/x",
        is_disabled=True,
        disabled_at=utcnow(),
        disabled_reason="Every attempt failed for 5 days.",
    )
    session.add(webhook)
    share = AppShare(app_id=app.id, organization_id=installer.org_id)
    session.add(share)
    await session.flush()
    entry = await make_log_entry(session, app_id=app.id, organization_id=owner.org_id, resource_id="r1")
    return World(
        owner=owner,
        no_settings=no_settings,
        stranger=stranger,
        installer=installer,
        ids={
            "app_id": app.id,
            "webhook_id": webhook.id,
            "entry_id": entry.id,
            "installation_id": installation.id,
            "token_id": token.id,
            "share_id": share.id,
        },
    )


def _url(template: str, ids: dict[str, uuid.UUID]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: str(ids[match.group(1)]), template)


async def _state(session: AsyncSession) -> tuple[int, ...]:
    """What any console action would change."""
    counts = []
    for model in (App, Webhook, WebhookLogEntry, AppInstallation, AppShare, OutboundDelivery):
        counts.append(await session.scalar(select(func.count()).select_from(model)) or 0)
    counts.append(await session.scalar(select(func.count()).where(ApiToken.revoked_at.is_(None))) or 0)
    counts.append(await session.scalar(select(func.count()).where(Webhook.is_disabled)) or 0)
    counts.append(await session.scalar(select(func.count()).where(OutboundDelivery.status == "pending")) or 0)
    names = await session.scalar(select(func.string_agg(App.name, ",")))
    return (*counts, hash(names))


async def _request(client: httpx.AsyncClient, method: str, url: str, token: str | None) -> httpx.Response:
    if method == "GET":
        return await client.get(url)
    data = {"csrf_token": token} if token is not None else {}
    return await client.post(url, data=data)


def _is_html(response: httpx.Response) -> bool:
    return response.headers["content-type"].startswith("text/html")


async def test_every_console_route_is_in_the_matrix(app: Any) -> None:
    routes = console_routes(app)
    assert ("POST", "/console/apps/{app_id}/deliveries/{entry_id}/redeliver") in routes
    assert ("GET", "/console/installed") in routes
    for care in ("enable", "test", "recover"):
        assert ("POST", "/console/apps/{app_id}/webhooks/{webhook_id}/" + care) in routes
    assert len(routes) >= 31


async def test_no_session_gets_the_login_page(app: Any, client: httpx.AsyncClient, world: World) -> None:
    for method, template in console_routes(app):
        response = await _request(client, method, _url(template, world.ids), token="forged")
        assert response.status_code == 200, (method, template, response.status_code)
        assert _is_html(response)
        assert "Sign in to the developer console" in response.text, (method, template)
        assert "Secret Sauce" not in response.text
        client.cookies.clear()


async def test_a_user_without_settings_gets_a_403_page(
    app: Any, client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    await sign_in(client, world.no_settings.user.email)
    token = csrf_of(await client.get("/console/apps"))  # the 403 page's sign-out form
    before = await _state(session)
    for method, template in console_routes(app):
        response = await _request(client, method, _url(template, world.ids), token)
        assert response.status_code == 403, (method, template, response.status_code)
        assert _is_html(response)
        assert "You do not have the `settings` permission; your administrator can grant it." in response.text
        assert "Secret Sauce" not in response.text
    assert await _state(session) == before


async def test_another_organizations_user_gets_a_404_page(
    app: Any, client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    await sign_in(client, world.stranger.user.email)
    token = await csrf(client)
    before = await _state(session)
    checked = 0
    for method, template in console_routes(app):
        if template in OWN:
            continue
        response = await _request(client, method, _url(template, world.ids), token)
        assert response.status_code == 404, (method, template, response.status_code)
        assert _is_html(response) and '<h1 id="error-title">Not found</h1>' in response.text
        assert "Secret Sauce" not in response.text
        checked += 1
    assert checked >= 26
    assert await _state(session) == before
    # Its own pages show its own (empty) world.
    for template in OWN:
        response = await client.get(template)
        assert response.status_code == 200 and "Secret Sauce" not in response.text


async def test_every_form_refuses_a_post_without_this_sessions_csrf_token(
    app: Any, client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    # A token of another session (the stranger's) is no better than none.
    await sign_in(client, world.stranger.user.email)
    foreign_token = await csrf(client)
    client.cookies.clear()
    await sign_in(client, world.owner.user.email)
    before = await _state(session)
    posts = [template for method, template in console_routes(app) if method == "POST"]
    assert len(posts) >= 16
    for template in posts:
        for token in (None, "", foreign_token):
            response = await _request(client, "POST", _url(template, world.ids), token)
            assert response.status_code == 403, (template, token, response.status_code)
            assert "The form was not sent from this site" in response.text
    assert await _state(session) == before
    # The sign-in and sign-out forms too.
    assert (await client.post("/console/logout", data={})).status_code == 403
    assert "Secret Sauce" in (await client.get("/console/apps")).text  # still signed in
    client.cookies.clear()
    refused = await client.post(
        "/console/login",
        data={"email": world.owner.user.email or "", "password": "x", "next": "/console/apps"},
    )
    assert refused.status_code == 403 and "The form expired" in refused.text


async def test_malformed_ids_are_a_404_page(client: httpx.AsyncClient, world: World) -> None:
    await sign_in(client, world.owner.user.email)
    response = await client.get("/console/apps/not-a-uuid/webhooks")
    assert response.status_code == 404 and _is_html(response)


async def test_another_organizations_webhook_under_ones_own_app_is_a_404_page(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    # The stranger's own app in the path: the webhook loader, not the app's, must refuse.
    own_app = await make_bot_app(session, world.stranger.organization, name="Own")
    await sign_in(client, world.stranger.user.email)
    token = await csrf(client)
    before = await _state(session)
    base = f"/console/apps/{own_app.id}/webhooks/{world.ids['webhook_id']}"
    since = utcnow().strftime("%Y-%m-%dT%H:%M")
    assert (await client.get(base)).status_code == 404
    for tail in ("/enable", "/test", "/recover", "", "/delete"):
        response = await client.post(base + tail, data={"csrf_token": token, "since": since})
        assert response.status_code == 404, (tail, response.status_code)
        assert '<h1 id="error-title">Not found</h1>' in response.text
        assert "No webhook found with the given ID." in response.text
    assert await _state(session) == before
