"""Tenant isolation: every route of the app, called by every kind of caller that must not get in.

The route list comes from `create_app().routes`; a route missing from `ROUTES` below fails the
test ("new route not covered by the isolation matrix"), and so does a stale entry. Each route
is called with real ids of organization X's resources (app, share, installation, webhook, log
entry) and a minimal valid body, as:

| caller            | who                                                   |
|-------------------|-------------------------------------------------------|
| `other_org`       | a user with every permission in another organization Y |
| `no_settings`     | a user of X without the `settings` permission          |
| `expired`         | a user of X with `settings` whose token has expired    |
| `deleted`         | a deleted user of X (token otherwise valid)            |
| `uninstalled_bot` | the app user of an app uninstalled from X (tokens revoked) |
| `app_as_user`     | an app installed in X acting as X's admin (`GIOSGAPP <trigger token> <secret>`) |
| `app_user_token`  | the same app as its app user, `Token <app-user token>` minted by its provider |
| `app_user_bearer` | the same app as its app user, `Bearer <access_token>` of a webhook's `app_user_auth` |
| `owner`           | X's own user with `settings`: the control, proving each request is well formed |

The app principals' installation has every scope, and its app is X's own: whatever it is
granted, an app never reaches app-provider routes (403), and elsewhere it gets what X's own user
gets, in X only (README "The permission model"). Every route states the rule of every caller, so
a new route fails here until it does.

Browser routes (`/apps/...`) ignore `Authorization`: there the caller is a session cookie (a
logged-in one for users with a password, an anonymous one otherwise) with its CSRF token.
No refused response body (or `Location`) may contain X's data unless the caller sent it in the
URL. Every call runs in a savepoint that is rolled back, so each route sees the same world. Fast
paths are off: they are being removed, and the routes are what this matrix states.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.responses import Response

from apps_api.auth.access_tokens import encode_access_token
from apps_api.installations.service import install_app, uninstall
from apps_api.kit.routing import RouteIndex
from apps_api.main import create_app
from apps_api.models import SCOPES, AppInstallation, User
from apps_api.models.base import utcnow
from apps_api.platform import service as platform
from apps_api.settings import Settings
from apps_api.web.session import BrowserSession, csrf_token, new_session, write_session
from tests.fixtures.factories import make_app, make_tenant, make_user
from tests.fixtures.installflow import PASSWORD, unique_email
from tests.fixtures.world import World, populate

# Not part of the API: documentation, schema and operations endpoints (no tenant data).
# The developer console's pages (session cookie, HTML) have a matrix of their own built from the
# same route list: tests/console/test_console_isolation.py.
CONSOLE = "/console"
# Public by design: the landing page and its icon, the document, its pages and their packaged
# assets, the probes.
EXCLUDED = {
    "/",
    "/favicon.ico",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/static-offline-docs",
    "/healthz",
    "/readyz",
    "/metrics",
}

DENIED_ORG = {"other_org": 403, "no_settings": 403, "expired": 401, "deleted": 401, "uninstalled_bot": 401}
DENIED_NO_ORG = {**DENIED_ORG, "other_org": 404}
APPS = ("app_as_user", "app_user_token", "app_user_bearer")
ALL = ("other_org", "no_settings", "expired", "deleted", "uninstalled_bot", *APPS, "owner")


def provider(status: int) -> dict[str, int]:
    """An app-provider route: X's own user only; an app principal is refused whatever its scopes."""
    return {**DENIED_ORG, **dict.fromkeys(APPS, 403), "owner": status}


def installer(status: int, denied: dict[str, int] = DENIED_ORG) -> dict[str, int]:
    """A route of the installing organization: an app with the scope gets what X's user gets."""
    return {**denied, **dict.fromkeys(APPS, status), "owner": status}


def granter(status: int) -> dict[str, int]:
    """Installing and uninstalling: X's own user only; an app never grants or revokes access."""
    return {**DENIED_ORG, **dict.fromkeys(APPS, 403), "owner": status}


def everyone(status: int, **others: int) -> dict[str, int]:
    return {**dict.fromkeys(ALL, status), **others}


@dataclass(frozen=True)
class Route:
    """What each caller gets from one route, and how to build a request for it."""

    expect: dict[str, int]
    json: Callable[[World], dict[str, Any]] | None = None
    form: Callable[[World, str], dict[str, str]] | None = None  # (world, caller's CSRF token)
    query: dict[str, str] = field(default_factory=dict)
    browser: bool = False


def _app_body(_: World) -> dict[str, Any]:
    return {
        "name": "Matrix app",
        "description": "Made by the isolation matrix",
        "is_app_user_required": False,
        "terms_of_service_url": "https://matrix.example.com/tos",
        "privacy_policy_url": "https://matrix.example.com/privacy",
    }


def _webhook_body(_: World) -> dict[str, Any]:
    return {"endpoint_url": "https://matrix.example.com/hook", "channel_subscriptions": []}


def _login_form(world: World, csrf: str) -> dict[str, str]:
    return {"csrf_token": csrf, "next": "/", "email": world.owner.user.email or "", "password": "wrong"}


def _csrf_form(_: World, csrf: str) -> dict[str, str]:
    return {"csrf_token": csrf, "next": "/"}


ORGS = "/api/v5/orgs/{organization_id}"
OPERATOR = "/internal/v1/organizations"
OWNED = ORGS + "/owned_apps/{app_id}"

ROUTES: dict[tuple[str, str], Route] = {
    # Public apps: no organization in the path; X's private app is simply not there (404).
    ("GET", "/api/v5/public_apps"): Route({**installer(200), "other_org": 200}),
    ("GET", "/api/v5/public_apps/{app_id}"): Route(installer(404, DENIED_NO_ORG)),
    # The channel catalogue: anyone with `settings`, like the public apps (no organization's data).
    ("GET", "/api/v5/webhook_channels"): Route({**installer(200), "other_org": 200}),
    ("GET", ORGS + "/partner_apps"): Route(installer(200)),
    # X's own app is not one of its partner apps.
    ("GET", ORGS + "/partner_apps/{app_id}"): Route(installer(404)),
    ("GET", ORGS + "/owned_apps"): Route(provider(200)),
    ("POST", ORGS + "/owned_apps"): Route(provider(201), json=_app_body),
    ("GET", OWNED): Route(provider(200)),
    ("PUT", OWNED): Route(provider(200), json=_app_body),
    ("PATCH", OWNED): Route(provider(200), json=lambda w: {"description": "patched"}),
    ("DELETE", OWNED): Route(provider(204)),
    ("POST", OWNED + "/rotate_secret"): Route(provider(200), json=lambda w: {"grace_period_seconds": 0}),
    ("GET", OWNED + "/shares"): Route(provider(200)),
    # Already shared with that partner: the owner's control gets past every check to the 409.
    ("POST", OWNED + "/shares"): Route(
        provider(409), json=lambda w: {"organization_id": str(w.partner.org_id)}
    ),
    ("GET", OWNED + "/shares/{share_id}"): Route(provider(200)),
    ("DELETE", OWNED + "/shares/{share_id}"): Route(provider(204)),
    ("GET", ORGS + "/installed_apps"): Route(installer(200)),
    ("GET", ORGS + "/installed_apps/{app_id}"): Route(installer(200)),
    ("GET", ORGS + "/app_installations"): Route(installer(200)),
    # Needs `users`, not `settings`: the user without `settings` has it.
    ("GET", ORGS + "/users"): Route({**installer(200), "no_settings": 200}),
    ("POST", ORGS + "/app_installations"): Route(
        granter(201), json=lambda w: {"app_id": str(w.installable_app_id)}
    ),
    ("GET", ORGS + "/app_installations/{installation_id}"): Route(installer(200)),
    ("DELETE", ORGS + "/app_installations/{installation_id}"): Route(granter(204)),
    ("GET", OWNED + "/installations"): Route(provider(200)),
    ("GET", OWNED + "/installations/{installation_id}"): Route(provider(200)),
    ("DELETE", OWNED + "/installations/{installer_organization_id}"): Route(provider(204)),
    ("GET", OWNED + "/installations/{installation_id}/app_user_tokens"): Route(provider(200)),
    ("POST", OWNED + "/installations/{installation_id}/app_user_tokens"): Route(
        provider(201), json=lambda w: {"expires_at": None}
    ),
    ("DELETE", OWNED + "/installations/{installation_id}/app_user_tokens/{token_id}"): Route(provider(204)),
    ("GET", OWNED + "/webhooks"): Route(provider(200)),
    ("POST", OWNED + "/webhooks"): Route(provider(201), json=_webhook_body),
    ("GET", OWNED + "/webhooks/{webhook_id}"): Route(provider(200)),
    ("PUT", OWNED + "/webhooks/{webhook_id}"): Route(provider(200), json=_webhook_body),
    ("PATCH", OWNED + "/webhooks/{webhook_id}"): Route(provider(200), json=_webhook_body),
    ("DELETE", OWNED + "/webhooks/{webhook_id}"): Route(provider(204)),
    ("POST", OWNED + "/webhooks/{webhook_id}/test"): Route(provider(202)),
    ("POST", OWNED + "/webhooks/{webhook_id}/recover"): Route(
        provider(202), json=lambda w: {"since": (utcnow() - timedelta(hours=1)).isoformat()}
    ),
    ("GET", OWNED + "/webhook_log_entries"): Route(provider(200)),
    ("GET", OWNED + "/webhook_log_entries/{entry_id}"): Route(provider(200)),
    ("POST", OWNED + "/webhook_log_entries/{entry_id}/redeliver"): Route(provider(202)),
    # Only the service key opens ingestion; no user token does, not even X's.
    ("POST", "/internal/v1/events"): Route(
        everyone(401),
        json=lambda w: {
            "events": [
                {
                    "organization_id": str(w.owner.org_id),
                    "channel": f"/api/v5/orgs/{w.owner.org_id}/chats",
                    "action": "added",
                    "resource_id": "chat-1",
                    "resource": {},
                }
            ]
        },
    ),
    ("POST", "/internal/v1/webhook_channels"): Route(
        everyone(401),
        json=lambda w: {
            "pattern": "/api/v5/orgs/{organization_id}/chats",
            "scope": "reports",
            "resource_schema": {},
        },
    ),
    # The operator API: only a service key opens it; no user or app credential does, not even X's.
    **{
        (method, OPERATOR + path): Route(everyone(401), json=body)
        for method, path, body in (
            ("GET", "", None),
            ("POST", "", lambda w: {"name": "Matrix org"}),
            ("GET", "/{organization}", None),
            ("PUT", "/{organization}", lambda w: {"name": "Matrix org", "features": ["apps"]}),
            ("PATCH", "/{organization}", lambda w: {"features": []}),
            ("GET", "/{organization}/users", None),
            ("POST", "/{organization}/users", lambda w: {"permissions": ["settings"]}),
            ("GET", "/{organization}/users/{user}", None),
            ("PUT", "/{organization}/users/{user}", lambda w: {"permissions": ["settings"]}),
            ("PATCH", "/{organization}/users/{user}", lambda w: {"permissions": ["settings"]}),
            ("DELETE", "/{organization}/users/{user}", None),
            ("GET", "/{organization}/users/{user}/tokens", None),
            ("POST", "/{organization}/users/{user}/tokens", lambda w: {"expires_at": None}),
            ("DELETE", "/{organization}/users/{user}/tokens/{token_id}", None),
            ("GET", "/{organization}/partners", None),
            ("PUT", "/{organization}/partners/{partner}", None),
            ("DELETE", "/{organization}/partners/{partner}", None),
            ("GET", "/{organization}/assets", None),
            ("POST", "/{organization}/assets", lambda w: {"url": "https://matrix.example.com/i.png"}),
        )
    },
    # The client authenticates with the app secret, not a header: a wrong secret is a 400 for
    # everyone, and X's real app user code is not consumed.
    ("POST", "/identity/token"): Route(
        everyone(400),
        form=lambda w, _: {
            "grant_type": "authorization_code",
            "code": w.app_user_code,
            "client_id": str(w.app.id),
            "client_secret": "not-the-secret",
        },
    ),
    # The install web flow (session cookies). Y cannot install X's private app (404 page); a
    # user without `settings` or a deleted one is simply not logged in (login page / 303 to it).
    ("GET", "/apps/_static/install.css"): Route(everyone(200), browser=True),
    ("GET", "/apps/{app_id}/install"): Route(
        everyone(200, other_org=404, owner=409), query={"next": "/"}, browser=True
    ),
    ("POST", "/apps/{app_id}/install/login"): Route(everyone(400), form=_login_form, browser=True),
    ("POST", "/apps/{app_id}/install/logout"): Route(everyone(303), form=_csrf_form, browser=True),
    ("POST", "/apps/{app_id}/install"): Route(
        everyone(303, other_org=404, owner=409), form=_csrf_form, browser=True
    ),
}


@dataclass
class Caller:
    name: str
    authorization: str
    browser: BrowserSession


@pytest.fixture
async def app_user_token(session: AsyncSession, world: World) -> tuple[uuid.UUID, str]:
    """A token of the world app's app user in X, minted as its provider would: (id, key)."""
    token, key = await platform.create_token(
        session=session, user_id=world.app_user_id, app_installation_id=world.installation_id
    )
    return token.id, key


@pytest.fixture
async def world(session: AsyncSession) -> World:
    owner = await make_tenant(
        session,
        name="Xenon Private Org",
        features=["apps", "app_provider"],
        email=unique_email("x"),
        password=PASSWORD,
    )
    return await populate(session, owner, tag="matrix")


@pytest.fixture
async def callers(
    session: AsyncSession, world: World, app_user_token: tuple[uuid.UUID, str], settings: Settings
) -> dict[str, Caller]:
    x = world.owner.organization
    other = await make_tenant(
        session,
        name="Yttrium Org",
        features=["apps", "app_provider"],
        email=unique_email("y"),
        password=PASSWORD,
    )
    no_settings, no_settings_key = await make_user(
        session, x, permissions=["users", "reports"], email=unique_email("ns"), password=PASSWORD
    )
    _, expired_key = await make_user(session, x, token_expires_at=utcnow() - timedelta(minutes=1))
    deleted, deleted_key = await make_user(session, x, email=unique_email("del"), password=PASSWORD)
    deleted_session = new_session(deleted)
    deleted.deleted_at = utcnow()
    bot_app = await make_app(
        session,
        x,
        name="Bot app",
        is_app_user_required=True,
        app_user_default_first_name="Gone",
        app_user_default_last_name="Bot",
    )
    installation = await install_app(
        granter=None, session=session, organization=x, app=bot_app, actor=world.owner.user
    )
    assert installation.app_user_id is not None
    _, bot_key = await platform.create_token(
        session=session, user_id=installation.app_user_id, app_installation_id=installation.id
    )
    current = await session.get(AppInstallation, installation.id)
    assert current is not None
    await uninstall(session=session, installation=current, actor_user_id=world.owner.user.id)
    await session.flush()
    bot = await session.get(User, installation.app_user_id)
    assert bot is not None and bot.deleted_at is not None
    # The app principals: X's own app, installed in X with every scope there is.
    installed = await session.get(AppInstallation, world.installation_id)
    assert installed is not None
    installed.allowed_scopes = list(SCOPES)
    await session.flush()
    access = {"secret_key": settings.secret_key, "organization_id": x.id, "app_id": world.app.id}
    trigger_token = encode_access_token(
        **access, user_id=world.owner.user.id, installation_id=world.installation_id
    )
    app_user_auth = encode_access_token(
        **access, user_id=world.app_user_id, installation_id=world.installation_id, as_app_user=True
    )
    return {
        "other_org": Caller("other_org", f"Token {other.token}", new_session(other.user)),
        "no_settings": Caller("no_settings", f"Token {no_settings_key}", new_session(no_settings)),
        "expired": Caller("expired", f"Token {expired_key}", new_session()),
        "deleted": Caller("deleted", f"Token {deleted_key}", deleted_session),
        "uninstalled_bot": Caller("uninstalled_bot", f"Token {bot_key}", new_session()),
        "app_as_user": Caller("app_as_user", f"GIOSGAPP {trigger_token} {world.app.secret}", new_session()),
        "app_user_token": Caller("app_user_token", f"Token {app_user_token[1]}", new_session()),
        "app_user_bearer": Caller("app_user_bearer", f"Bearer {app_user_auth}", new_session()),
        "owner": Caller("owner", f"Token {world.owner.token}", new_session(world.owner.user)),
    }


def _path(template: str, world: World, token_id: uuid.UUID | None = None) -> str:
    values = {
        "token_id": token_id,
        "organization_id": world.owner.org_id,
        "app_id": world.app.id,
        "share_id": world.share_id,
        "installation_id": world.installation_id,
        "installer_organization_id": world.owner.org_id,
        "webhook_id": world.webhook_id,
        "entry_id": world.entry_id,
        # The operator API names objects by external id or `id:<uuid>`.
        "organization": f"id:{world.owner.org_id}",
        "user": f"id:{world.owner.user.id}",
        "partner": f"id:{world.partner.org_id}",
    }
    path = template
    for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
        if name not in values:
            raise AssertionError(f"new path parameter {name!r} ({template}): teach the isolation matrix")
        path = path.replace("{" + name + "}", str(values[name]))
    return path


def _cookie(browser: BrowserSession, settings: Settings) -> str:
    response = Response()
    write_session(response, browser, secret_key=settings.secret_key, secure=False)
    raw = response.headers["set-cookie"]
    return raw.split(";", 1)[0]


async def _call(
    client: httpx.AsyncClient,
    method: str,
    template: str,
    route: Route,
    world: World,
    caller: Caller,
    settings: Settings,
    token_id: uuid.UUID,
) -> httpx.Response:
    headers = {"Authorization": caller.authorization}
    if route.browser:
        headers["Cookie"] = _cookie(caller.browser, settings)
    csrf = csrf_token(caller.browser, secret_key=settings.secret_key)
    return await client.request(
        method,
        _path(template, world, token_id),
        params=route.query or None,
        json=route.json(world) if route.json else None,
        data=route.form(world, csrf) if route.form else None,
        headers=headers,
    )


def _excerpt(response: httpx.Response) -> str:
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.text[:200] if is_json else ""


def _leaks(response: httpx.Response, world: World) -> list[str]:
    """X's data in the response that the caller did not send itself."""
    sent = unquote_plus(str(response.request.url) + " " + response.request.content.decode("latin-1"))
    text = response.text + " " + response.headers.get("location", "")
    return [name for name, value in world.secrets().items() if value and value not in sent and value in text]


def app_routes(settings: Settings) -> list[tuple[str, str]]:
    """(METHOD, path) of every route of the app; non-API routes must be excluded by name."""
    found: list[tuple[str, str]] = []
    # FastAPI wraps included routers; iter_route_contexts() flattens them with their full paths.
    for context in iter_route_contexts(create_app(settings).routes):
        if isinstance(context.route, RouteIndex):  # kit/routing: it only finds the others
            continue
        path = context.path
        if path in EXCLUDED or path.startswith(CONSOLE):
            continue
        assert isinstance(context.route, APIRoute), f"route {path} is not an APIRoute: cover or exclude it"
        found.extend((method, path) for method in sorted(set(context.methods or ()) - {"HEAD"}))
    return found


def test_every_route_is_in_the_matrix(settings: Settings) -> None:
    routes = app_routes(settings)
    missing = [route for route in routes if route not in ROUTES]
    assert not missing, f"new route not covered by the isolation matrix: {missing}"
    stale = [route for route in ROUTES if route not in routes]
    assert not stale, f"the isolation matrix names routes that do not exist: {stale}"
    assert len(routes) == len(ROUTES) >= 42
    # Every route states what every kind of caller gets, app principals included.
    unstated = [
        (route, sorted(set(ALL) - set(rule.expect)))
        for route, rule in ROUTES.items()
        if set(rule.expect) != set(ALL)
    ]
    assert not unstated, f"routes without a rule for some callers: {unstated}"


async def test_no_caller_gets_into_another_organization(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    world: World,
    callers: dict[str, Caller],
    settings: Settings,
    app_user_token: tuple[uuid.UUID, str],
    arq_pool: Any,
) -> None:
    outcomes: list[str] = []
    for method, template in app_routes(settings):
        route = ROUTES[(method, template)]
        for name in ALL:
            savepoint = await connection.begin_nested()
            try:
                response = await _call(
                    client, method, template, route, world, callers[name], settings, app_user_token[0]
                )
            finally:
                await savepoint.rollback()
                # The matrix fails credentials on purpose, far more often than the login
                # throttle allows (tests/security/test_security_login.py): each call starts unthrottled.
                keys = [
                    key async for key in arq_pool.scan_iter(match=f"{arq_pool.default_queue_name}:throttle:*")
                ]
                if keys:
                    await arq_pool.delete(*keys)
            expected = route.expect[name]
            # X's own user, and an app in X where it is let in, may see X's data.
            leaks = _leaks(response, world) if name != "owner" and expected >= 400 else []
            if response.status_code != expected or leaks:
                outcomes.append(
                    f"{method} {template} as {name}: {response.status_code} (expected {expected})"
                    + (f", leaks {leaks}" if leaks else "")
                    + f": {_excerpt(response)}"
                )
    assert not outcomes, "\n".join(outcomes)


async def test_the_code_survives_the_matrix_and_the_owner_sees_its_data(
    client: httpx.AsyncClient, world: World, callers: dict[str, Caller]
) -> None:
    """The control: X's own user sees the very data the others never see."""
    response = await client.get(
        _path(OWNED, world), headers={"Authorization": callers["owner"].authorization}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["secret"] == world.app.secret and body["name"] == world.app.name
    exchange = await client.post(
        "/identity/token",
        data={
            "grant_type": "authorization_code",
            "code": world.app_user_code,
            "client_id": str(world.app.id),
            "client_secret": world.app.secret,
        },
    )
    assert exchange.status_code == 200 and exchange.json()["user_id"] == str(world.app_user_id)
    assert uuid.UUID(exchange.json()["organization_id"]) == world.owner.org_id


# --- Y on its own paths with X's ids: per-resource scoping -----------------------------------
#
# The matrix above sends Y to X's paths, so it only ever meets the organization check. Here Y
# calls ITS OWN organization's paths (where every access check passes) with X's resource ids,
# which only the per-resource scoping of each query stops. For a route with nested ids, Y names
# its own app with X's nested id (so the app check passes and the nested lookup must filter by
# app) and also X's app with X's ids. Every call is a 404 that leaves X's data as it was.

# Path parameter -> the id of that resource in a World. A new nested resource (e.g. app-user
# tokens: `token_id`) is added here; a route with a parameter missing here fails the test.
NESTED_IDS: dict[str, Callable[[World], uuid.UUID]] = {
    "app_id": lambda w: w.app.id,
    "share_id": lambda w: w.share_id,
    "installation_id": lambda w: w.installation_id,
    "installer_organization_id": lambda w: w.owner.org_id,
    "webhook_id": lambda w: w.webhook_id,
    "entry_id": lambda w: w.entry_id,
    "token_id": lambda w: w.app_user_token_id,
}


def _parameters(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]


def _item_routes(settings: Settings) -> list[tuple[str, str]]:
    """Routes under an organization that name at least one resource by id."""
    return [
        (method, template)
        for method, template in app_routes(settings)
        if template.startswith(ORGS) and set(_parameters(template)) - {"organization_id"}
    ]


def _foreign_paths(template: str, y: World, x: World) -> list[str]:
    """Y's organization in the path; X's ids, with Y's own app or X's app for nested ids."""
    names = _parameters(template)
    unknown = [name for name in names if name != "organization_id" and name not in NESTED_IDS]
    if unknown:
        raise AssertionError(f"new path parameter {unknown} ({template}): add it to NESTED_IDS")
    variants = [{"app_id": x.app.id}]
    if "app_id" in names and len(names) > 2:
        variants.append({"app_id": y.app.id})  # the app check passes; the nested one must not
    paths = []
    for variant in variants:
        path = template.replace("{organization_id}", str(y.owner.org_id))
        for name in names[1:]:
            value = variant.get(name, NESTED_IDS[name](x))
            path = path.replace("{" + name + "}", str(value))
        paths.append(path)
    return paths


def _own_path(template: str, y: World) -> str:
    path = template.replace("{organization_id}", str(y.owner.org_id))
    for name in _parameters(template)[1:]:
        path = path.replace("{" + name + "}", str(NESTED_IDS[name](y)))
    return path


async def _x_state(client: httpx.AsyncClient, connection: AsyncConnection, x: World) -> dict[str, Any]:
    """Everything of X that a foreign call could change, read back as X (API) and from the database."""
    headers = {"Authorization": f"Token {x.owner.token}"}
    state: dict[str, Any] = {}
    for template in (
        OWNED,
        OWNED + "/shares",
        OWNED + "/shares/{share_id}",
        OWNED + "/installations",
        OWNED + "/installations/{installation_id}",
        OWNED + "/installations/{installation_id}/app_user_tokens",
        OWNED + "/webhooks",
        OWNED + "/webhooks/{webhook_id}",
        OWNED + "/webhook_log_entries",
        OWNED + "/webhook_log_entries/{entry_id}",
        ORGS + "/app_installations/{installation_id}",
        ORGS + "/installed_apps/{app_id}",
    ):
        response = await client.get(_path(template, x), headers=headers)
        assert response.status_code == 200, (template, response.text)
        state[template] = response.json()
    org = str(x.owner.org_id)
    for name, sql in {
        "events": f"SELECT count(*) FROM events WHERE organization_id = '{org}'",  # noqa: S608
        "log entries": f"SELECT count(*) FROM webhook_log_entries WHERE organization_id = '{org}'",  # noqa: S608
        "deliveries": f"SELECT count(*) FROM outbound_deliveries WHERE organization_id = '{org}'",  # noqa: S608
        "tokens revoked": (
            "SELECT count(*) FROM api_tokens t JOIN users u ON u.id = t.user_id "  # noqa: S608
            f"WHERE u.organization_id = '{org}' AND t.revoked_at IS NOT NULL"
        ),
    }.items():
        state[name] = (await connection.exec_driver_sql(sql)).scalar()
    return state


@pytest.fixture
async def y_world(session: AsyncSession) -> World:
    """Organization Y with one resource of every kind of its own (a full world, like X's)."""
    y = await make_tenant(session, name="Yttrium Own Org", features=["apps", "app_provider"])
    return await populate(session, y, tag="y-own")


def test_every_item_route_is_probed_with_foreign_ids(settings: Settings) -> None:
    routes = _item_routes(settings)
    # Every item route's parameters are known (else `_foreign_paths` names the new one).
    assert all(set(_parameters(t)) - {"organization_id"} <= set(NESTED_IDS) for _, t in routes), routes
    assert len(routes) >= 20, routes


async def test_y_on_its_own_paths_with_x_ids_gets_404_and_changes_nothing(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    world: World,
    y_world: World,
    settings: Settings,
) -> None:
    y_headers = {"Authorization": f"Token {y_world.owner.token}"}
    before = await _x_state(client, connection, world)
    failures: list[str] = []
    probed = 0
    for method, template in _item_routes(settings):
        route = ROUTES[(method, template)]
        body = route.json(y_world) if route.json else None
        # The control: Y's own ids reach the resource (so a 404 below is the scoping, not a typo).
        savepoint = await connection.begin_nested()
        try:
            own = await client.request(method, _own_path(template, y_world), json=body, headers=y_headers)
        finally:
            await savepoint.rollback()
        if own.status_code != route.expect["owner"]:
            failures.append(f"control {method} {template}: {own.status_code}: {own.text[:200]}")
        for path in _foreign_paths(template, y_world, world):
            probed += 1
            response = await client.request(method, path, json=body, headers=y_headers)
            leaks = _leaks(response, world)
            if response.status_code != 404 or leaks:
                failures.append(
                    f"{method} {path} ({template}) as Y: {response.status_code} (expected 404)"
                    + (f", leaks {leaks}" if leaks else "")
                    + f": {response.text[:200]}"
                )
    assert not failures, "\n".join(failures)
    assert probed >= 30
    after = await _x_state(client, connection, world)
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"a foreign call changed X's data: {changed}"


async def test_foreign_ids_in_bodies_and_filters_are_scoped_too(
    client: httpx.AsyncClient, connection: AsyncConnection, world: World, y_world: World
) -> None:
    """Ids outside the path: X's app to install, X's webhook as a log filter."""
    y_headers = {"Authorization": f"Token {y_world.owner.token}"}
    y_org = f"/api/v5/orgs/{y_world.owner.org_id}"
    install = await client.post(
        f"{y_org}/app_installations", json={"app_id": str(world.installable_app_id)}, headers=y_headers
    )
    assert install.status_code == 404, install.text
    entries = await client.get(
        f"{y_org}/owned_apps/{y_world.app.id}/webhook_log_entries",
        params={"webhook_id": str(world.webhook_id)},
        headers=y_headers,
    )
    assert entries.status_code == 200 and entries.json()["results"] == [], entries.text
    own = await client.get(
        f"{y_org}/owned_apps/{y_world.app.id}/webhook_log_entries",
        params={"webhook_id": str(y_world.webhook_id)},
        headers=y_headers,
    )
    assert [entry["id"] for entry in own.json()["results"]] == [str(y_world.entry_id)]


async def test_foreign_redeliver_creates_nothing_and_own_redeliver_does(
    client: httpx.AsyncClient, connection: AsyncConnection, world: World, y_world: World
) -> None:
    """Redeliver of X's real entry through Y's own app: 404, no new attempt; Y's own: 202, one."""
    y_headers = {"Authorization": f"Token {y_world.owner.token}"}
    y_app = f"/api/v5/orgs/{y_world.owner.org_id}/owned_apps/{y_world.app.id}"

    async def attempts(app_id: uuid.UUID) -> int:
        sql = f"SELECT count(*) FROM webhook_log_entries WHERE app_id = '{app_id}'"  # noqa: S608
        return int((await connection.exec_driver_sql(sql)).scalar() or 0)

    x_before, y_before = await attempts(world.app.id), await attempts(y_world.app.id)
    foreign = await client.post(f"{y_app}/webhook_log_entries/{world.entry_id}/redeliver", headers=y_headers)
    assert foreign.status_code == 404, foreign.text
    assert foreign.json() == {"detail": "No webhook log entry found with the given ID."}
    assert await attempts(world.app.id) == x_before and await attempts(y_world.app.id) == y_before
    own = await client.post(f"{y_app}/webhook_log_entries/{y_world.entry_id}/redeliver", headers=y_headers)
    assert own.status_code == 202, own.text
    assert await attempts(y_world.app.id) == y_before + 1 and await attempts(world.app.id) == x_before


ORGANIZATION_ERROR = "You do not have access to this organization."
SETTINGS_ERROR = "You do not have the `settings` permission; your administrator can grant it."


async def test_another_orgs_user_without_settings_gets_the_organization_error(
    client: httpx.AsyncClient, session: AsyncSession, world: World, settings: Settings
) -> None:
    """The organization check comes before the `settings` check (README's order of access checks).

    Both are 403s, so only the message tells them apart: a user of Y without `settings` on X's
    paths is refused for the organization; on Y's own paths, for the permission.
    """
    y = await make_tenant(session, name="Ytterbium Org", permissions=["users"], features=["apps"])
    wrong: list[str] = []
    for method, template in app_routes(settings):
        if not template.startswith(ORGS):
            continue
        route = ROUTES[(method, template)]
        body = route.json(world) if route.json else None
        on_x = await client.request(method, _path(template, world), json=body, headers=y.headers)
        if (on_x.status_code, on_x.json()) != (403, {"detail": ORGANIZATION_ERROR}):
            wrong.append(f"{method} {template} on X: {on_x.status_code} {on_x.text[:120]}")
        own = _path(template, world).replace(str(world.owner.org_id), str(y.org_id))
        on_y = await client.request(method, own, json=body, headers=y.headers)
        if template == ORGS + "/users":  # the one collection that needs `users`, which Y's user has
            if on_y.status_code != 200:
                wrong.append(f"{method} {template} on Y: {on_y.status_code} {on_y.text[:120]}")
        elif (on_y.status_code, on_y.json()) != (403, {"detail": SETTINGS_ERROR}):
            wrong.append(f"{method} {template} on Y: {on_y.status_code} {on_y.text[:120]}")
    assert not wrong, "\n".join(wrong)
