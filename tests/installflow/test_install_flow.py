"""The install web flow over HTTP (no browser): cookies, CSRF, `next`, every page and redirect."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import decode_access_token
from apps_api.delivery.triggers.tokens import decode_trigger_data, trigger_host
from apps_api.models import AppInstallation, AppUserCode, User
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from apps_api.web.session import COOKIE_NAME, safe_next
from tests.fixtures.factories import make_app, make_tenant
from tests.fixtures.installflow import (
    PASSWORD,
    csrf_of,
    install_url,
    log_in,
    make_bot_app,
    make_installer,
    make_public_app,
    query_of,
)

NEXT = "/settings/apps?tab=installed"


async def _installation(
    session: AsyncSession, app_id: uuid.UUID, org_id: uuid.UUID
) -> AppInstallation | None:
    return (
        await session.execute(
            select(AppInstallation)
            .where(AppInstallation.app_id == app_id, AppInstallation.organization_id == org_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


# --- next -------------------------------------------------------------------------------

ORIGIN = "https://service.example.com"


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "http://evil.example",
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/\n/evil.example",
        "/ok\x00",
        "evil.example",
        "settings",
        "/" + "a" * 2001,
        # Absolute URLs of any other origin: scheme, host and port must all be the service's.
        "http://service.example.com/settings",
        "https://service.example.com:8443/settings",
        "https://service.example.com.evil.example/settings",
        "https://evil.example/https://service.example.com/",
        "https://user:pass@service.example.com/settings",
        "https://service.example.com@evil.example/",
        "https://service.example.com//evil.example",
        "https://service.example.com/\\evil.example",
        "ftp://service.example.com/settings",
        "https://service.example.com:notaport/",
    ],
)
def test_safe_next_refuses_everything_but_same_origin_paths(value: str) -> None:
    assert safe_next(value, origin=ORIGIN) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/"),
        ("", "/"),
        ("/", "/"),
        ("/settings/apps?x=1#top", "/settings/apps?x=1#top"),
        # The spec's rule is the origin: an absolute URL of the service's own origin is its path.
        ("https://service.example.com/settings", "/settings"),
        ("https://SERVICE.example.com:443/settings/apps?x=1#top", "/settings/apps?x=1#top"),
        ("https://service.example.com", "/"),
    ],
)
def test_safe_next_accepts_same_origin_paths_and_urls(value: str | None, expected: str) -> None:
    assert safe_next(value, origin=ORIGIN) == expected


async def test_an_absolute_next_of_the_service_origin_is_followed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email, next_="http://testserver/settings?tab=apps")
    assert page.status_code == 200, page.text
    response = await client.post(
        f"/apps/{app.id}/install",
        data={"csrf_token": csrf_of(page), "next": "http://testserver/settings?tab=apps"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/settings?tab=apps"
    foreign = await client.get(install_url(app.id, "http://testserver.evil.example/settings"))
    assert foreign.status_code == 400 and "Invalid return address" in foreign.text


@pytest.mark.parametrize(
    "value", ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)"]
)
async def test_foreign_next_is_refused_with_a_page(
    client: httpx.AsyncClient, session: AsyncSession, value: str
) -> None:
    owner = await make_tenant(session, name="Owner")
    app = await make_public_app(session, owner.organization)
    response = await client.get(install_url(app.id, value))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Invalid return address" in response.text
    assert "location" not in response.headers
    assert "evil.example" not in response.text  # the address is not echoed back as a link


async def test_foreign_next_is_refused_on_install_post(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    response = await client.post(
        f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": "//evil.example"}
    )
    assert response.status_code == 400
    assert "Invalid return address" in response.text
    assert await _installation(session, app.id, installer.org_id) is None


# --- login -----------------------------------------------------------------------------


async def test_without_session_the_login_page_is_shown(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    app = await make_public_app(session, owner.organization, name="Secret Name")
    response = await client.get(install_url(app.id, NEXT))
    assert response.status_code == 200
    assert "Log in to install an app" in response.text
    assert 'name="password"' in response.text
    assert f'action="/apps/{app.id}/install/login"' in response.text
    # Nothing about the app before login: its id alone must not reveal a private app's name.
    assert "Secret Name" not in response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/apps/" in cookie
    assert "Max-Age=7200" in cookie
    assert "Secure" not in cookie  # plain http here
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_session_cookie_is_secure_over_https(app: object, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    public = await make_public_app(session, owner.organization)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as https_client:
        response = await https_client.get(install_url(public.id))
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


async def test_login_leads_to_the_confirmation_page(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Bots & Co <Ltd>")
    installer = await make_installer(session, name="Shop Inc")
    app = await make_bot_app(session, owner.organization)
    login_page = await client.get(install_url(app.id, NEXT))
    anonymous_cookie = client.cookies.get(COOKIE_NAME, path="/apps/")
    response = await client.post(
        f"/apps/{app.id}/install/login",
        data={
            "csrf_token": csrf_of(login_page),
            "next": NEXT,
            "email": installer.user.email,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == install_url(app.id, NEXT)
    assert client.cookies.get(COOKIE_NAME, path="/apps/") != anonymous_cookie  # a fresh session after login
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    text = page.text
    assert "Install Helpful Bot?" in text
    assert "Answers your visitors&#39; questions." in text
    assert "Bots &amp; Co &lt;Ltd&gt;" in text  # owner, escaped
    assert 'src="https://cdn.example.com/icons/bot.png"' in text
    assert "<code>settings</code>" in text and "<code>users</code>" in text
    assert "Shop Inc" in text  # the organization it goes to
    assert 'name="first_name" maxlength="150" value="Helpful"' in text
    assert 'name="last_name" maxlength="150" value="Bot"' in text
    assert 'name="alias" maxlength="150" value="helper"' in text
    assert f'action="/apps/{app.id}/install/logout"' in text
    assert f'<input type="hidden" name="next" value="{NEXT}">' in text


async def test_email_is_case_insensitive(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, (installer.user.email or "").upper())
    assert "Install Helpful Bot?" in page.text


@pytest.mark.parametrize("case", ["wrong_password", "unknown_email", "deleted_user", "no_settings", "bot"])
async def test_login_failures_look_the_same(
    client: httpx.AsyncClient, session: AsyncSession, case: str
) -> None:
    owner = await make_tenant(session, name="Owner")
    app = await make_public_app(session, owner.organization)
    installer = await make_installer(session, permissions=["users"] if case == "no_settings" else None)
    email, password = installer.user.email, PASSWORD
    if case == "wrong_password":
        password = "not the password"
    elif case == "unknown_email":
        email = "nobody@example.com"
    elif case == "deleted_user":
        installer.user.deleted_at = utcnow()
        await session.flush()
    elif case == "bot":
        installer.user.is_bot = True
        await session.flush()
    login_page = await client.get(install_url(app.id, NEXT))
    response = await client.post(
        f"/apps/{app.id}/install/login",
        data={"csrf_token": csrf_of(login_page), "next": NEXT, "email": email, "password": password},
    )
    assert response.status_code == 400
    assert "Those credentials do not work here." in response.text
    assert f'value="{email}"' in response.text  # the email is kept, the password is not
    assert 'type="password" autocomplete="current-password" required>' in response.text
    # Still not logged in.
    again = await client.get(install_url(app.id, NEXT))
    assert "Log in to install an app" in again.text


@pytest.mark.parametrize("token", [None, "", "garbage", "other-session"])
async def test_login_needs_the_csrf_token_of_its_session(
    client: httpx.AsyncClient, app: object, session: AsyncSession, token: str | None
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    public = await make_public_app(session, owner.organization)
    await client.get(install_url(public.id, NEXT))
    if token == "other-session":
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            token = csrf_of(await other.get(install_url(public.id, NEXT)))
    data = {"next": NEXT, "email": installer.user.email, "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    response = await client.post(f"/apps/{public.id}/install/login", data=data)
    assert response.status_code == 403
    assert "Form expired" in response.text
    assert "set-cookie" not in response.headers


async def test_login_without_any_cookie_is_403(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    public = await make_public_app(session, owner.organization)
    token = csrf_of(await client.get(install_url(public.id, NEXT)))
    client.cookies.clear()
    response = await client.post(
        f"/apps/{public.id}/install/login",
        data={"csrf_token": token, "next": NEXT, "email": installer.user.email, "password": PASSWORD},
    )
    assert response.status_code == 403


# --- sessions ------------------------------------------------------------------------------


async def test_tampered_cookie_means_logged_out(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    await log_in(client, app.id, installer.user.email)
    value = client.cookies.get(COOKIE_NAME, path="/apps/")
    client.cookies.set(COOKIE_NAME, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/apps/")
    response = await client.get(install_url(app.id, NEXT))
    assert "Log in to install an app" in response.text


@pytest.mark.parametrize("change", ["password", "permission", "deleted"])
async def test_session_ends_when_the_account_changes(
    client: httpx.AsyncClient, session: AsyncSession, change: str
) -> None:
    from apps_api.kit.security import hash_password

    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    if change == "password":
        installer.user.password_hash = hash_password("a new password")
    elif change == "permission":
        installer.user.permissions = ["users"]
    else:
        installer.user.deleted_at = utcnow()
    await session.flush()
    # A form of the old session does not install: it sends the browser to log in.
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert response.status_code == 303
    assert response.headers["location"] == install_url(app.id, NEXT)
    assert "Log in to install an app" in (await client.get(install_url(app.id, NEXT))).text
    assert await _installation(session, app.id, installer.org_id) is None


async def test_logout(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    refused = await client.post(f"/apps/{app.id}/install/logout", data={"next": NEXT})
    assert refused.status_code == 403
    response = await client.post(
        f"/apps/{app.id}/install/logout", data={"csrf_token": csrf_of(page), "next": NEXT}
    )
    assert response.status_code == 303
    assert response.headers["location"] == install_url(app.id, NEXT)
    assert f'{COOKIE_NAME}=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert COOKIE_NAME not in client.cookies
    assert "Log in to install an app" in (await client.get(install_url(app.id, NEXT))).text


# --- installing ----------------------------------------------------------------------------


async def test_install_creates_the_installation_and_app_user_then_goes_to_next(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email, next_=NEXT)
    response = await client.post(
        f"/apps/{app.id}/install",
        data={
            "csrf_token": csrf_of(page),
            "next": NEXT,
            "first_name": "Robo",
            "last_name": "Helper",
            "alias": "robo",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == NEXT
    installation = await _installation(session, app.id, installer.org_id)
    assert installation is not None
    assert installation.created_by_user_id == installer.user.id
    assert installation.allowed_scopes == ["settings", "users"]
    bot = await session.get(User, installation.app_user_id, populate_existing=True)
    assert bot is not None and bot.is_bot and bot.organization_id == installer.org_id
    assert (bot.first_name, bot.last_name, bot.alias) == ("Robo", "Helper", "robo")
    assert bot.permissions == []
    # No install trigger: no code was issued.
    assert (
        await session.scalar(select(AppUserCode.id).where(AppUserCode.app_installation_id == installation.id))
        is None
    )


async def test_install_without_next_goes_to_root(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    login_page = await client.get(install_url(app.id, None))
    assert '<input type="hidden" name="next" value="/">' in login_page.text
    page = await log_in(client, app.id, installer.user.email, next_="")
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert await _installation(session, app.id, installer.org_id) is not None


async def test_app_user_fields_left_empty_use_the_defaults_only_where_there_is_none_to_show(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization, app_user_default_alias=None)
    page = await log_in(client, app.id, installer.user.email)
    assert 'name="alias" maxlength="150" value=""' in page.text
    response = await client.post(
        f"/apps/{app.id}/install",
        data={
            "csrf_token": csrf_of(page),
            "next": NEXT,
            "first_name": "Helpful",
            "last_name": "Bot",
            "alias": "",
        },
    )
    assert response.status_code == 303
    installation = await _installation(session, app.id, installer.org_id)
    assert installation is not None
    bot = await session.get(User, installation.app_user_id, populate_existing=True)
    assert bot is not None and (bot.first_name, bot.last_name, bot.alias) == ("Helpful", "Bot", None)


async def test_blank_app_user_name_re_renders_the_form_and_installs_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    response = await client.post(
        f"/apps/{app.id}/install",
        data={
            "csrf_token": csrf_of(page),
            "next": NEXT,
            "first_name": "  ",
            "last_name": "<b>Bot</b>",
            "alias": "x",
        },
    )
    assert response.status_code == 400
    assert "correct the fields below" in response.text
    assert "First name: This field may not be blank." in response.text
    assert 'value="&lt;b&gt;Bot&lt;/b&gt;"' in response.text  # what was typed is kept, escaped
    assert await _installation(session, app.id, installer.org_id) is None
    # The form still works afterwards (the refused attempt left the session usable).
    retry = await client.post(
        f"/apps/{app.id}/install",
        data={
            "csrf_token": csrf_of(response),
            "next": NEXT,
            "first_name": "Ok",
            "last_name": "Bot",
            "alias": "x",
        },
    )
    assert retry.status_code == 303
    assert await _installation(session, app.id, installer.org_id) is not None


@pytest.mark.parametrize("token", [None, "garbage", "other-session"])
async def test_install_needs_the_csrf_token_of_its_session(
    client: httpx.AsyncClient, app: object, session: AsyncSession, token: str | None
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    public = await make_public_app(session, owner.organization)
    await log_in(client, public.id, installer.user.email)
    if token == "other-session":
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            token = csrf_of(await log_in(other, public.id, installer.user.email))
    data = {"next": NEXT}
    if token is not None:
        data["csrf_token"] = token
    response = await client.post(f"/apps/{public.id}/install", data=data)
    assert response.status_code == 403
    assert "Form expired" in response.text
    assert await _installation(session, public.id, installer.org_id) is None


async def test_install_trigger_redirects_to_the_trigger_url_with_signed_parameters(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(
        session,
        owner.organization,
        trigger_url="https://bot.example.com/giosg/trigger?tenant=a&type=keep-not",
        trigger_conditions=["install", "uninstall"],
        required_scopes=["settings"],
    )
    page = await log_in(client, app.id, installer.user.email, next_=NEXT)
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' https://bot.example.com;" in csp  # the redirect after the POST is allowed
    response = await client.post(
        f"/apps/{app.id}/install",
        data={
            "csrf_token": csrf_of(page),
            "next": NEXT,
            "first_name": "Helpful",
            "last_name": "Bot",
            "alias": "helper",
        },
    )
    assert response.status_code == 303
    location = response.headers["location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "bot.example.com", "/giosg/trigger")
    query = query_of(location)
    assert query["tenant"] == "a"
    assert query["type"] == "install"
    assert query["redirect_uri"] == "http://testserver" + NEXT
    installation = await _installation(session, app.id, installer.org_id)
    assert installation is not None and installation.app_user_id is not None

    data = decode_trigger_data(query["data"], app_secret=app.secret)
    # Every claim giosg's integrations index, null where it does not apply; `sub` is our host.
    assert set(data) >= {"sub", "user_id", "org_id", "chat_id", "visitor_id", "inst_id", "app_id"}
    assert set(data) >= {"app_user_id", "app_user_code", "iat", "exp"}
    # The configured public host (here unset: the fallback), never the request's Host header.
    assert data["sub"] == "localhost" == trigger_host(settings.public_base_url)
    assert (data["chat_id"], data["visitor_id"], data["room_id"], data["domain_host"]) == (None,) * 4
    assert data["user_id"] == str(installer.user.id)
    assert data["org_id"] == str(installer.org_id)
    assert data["app_id"] == str(app.id)
    assert data["inst_id"] == str(installation.id)
    assert data["app_user_id"] == str(installation.app_user_id)
    assert isinstance(data["app_user_code"], str) and len(data["app_user_code"]) >= 40
    assert data["exp"] > data["iat"]

    token = decode_access_token(query["token"], secret_key=settings.secret_key)
    assert token is not None
    assert token["sub"] == token["user_id"] == str(installer.user.id)
    # giosg's `perms`: the installer's permissions within the installation's scopes.
    assert token["perms"] == sorted(set(installer.user.permissions) & set(installation.allowed_scopes))
    assert token["perms"] == installation.allowed_scopes != []
    assert (token["org_id"], token["app_id"], token["inst_id"]) == (
        str(installer.org_id),
        str(app.id),
        str(installation.id),
    )

    # The code is stored only as a digest, single use, bound to this installation and app user.
    code = (
        await session.execute(select(AppUserCode).where(AppUserCode.app_installation_id == installation.id))
    ).scalar_one()
    assert code.code_digest != data["app_user_code"].encode()
    assert (code.app_id, code.user_id, code.used_at) == (app.id, installation.app_user_id, None)
    assert 0 < (code.expires_at - code.created_at).total_seconds() <= 15 * 60

    # The app exchanges the code, and may call the API with the trigger token.
    exchanged = await client.post(
        "/identity/token",
        data={
            "grant_type": "authorization_code",
            "code": data["app_user_code"],
            "client_id": str(app.id),
            "client_secret": app.secret,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["user_id"] == str(installation.app_user_id)
    api = await client.get(
        "/api/v5/public_apps", headers={"Authorization": f"GIOSGAPP {query['token']} {app.secret}"}
    )
    assert api.status_code == 200
    assert [item["id"] for item in api.json()["results"]] == [str(app.id)]


async def test_install_trigger_without_app_user_has_no_code(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(
        session, owner.organization, trigger_url="https://bot.example.com/t", trigger_conditions=["install"]
    )
    page = await log_in(client, app.id, installer.user.email)
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": "/"})
    assert response.status_code == 303
    query = query_of(response.headers["location"])
    data = decode_trigger_data(query["data"], app_secret=app.secret)
    assert data["app_user_id"] is None
    assert data["app_user_code"] is None
    assert query["redirect_uri"] == "http://testserver/"


async def test_trigger_url_without_install_condition_goes_to_next(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(
        session, owner.organization, trigger_url="https://bot.example.com/t", trigger_conditions=["uninstall"]
    )
    page = await log_in(client, app.id, installer.user.email)
    assert "form-action 'self';" in page.headers["content-security-policy"]
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert response.status_code == 303
    assert response.headers["location"] == NEXT


async def test_redirect_uri_uses_the_public_base_url(
    client: httpx.AsyncClient, app: object, session: AsyncSession, settings: Settings
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    public = await make_public_app(
        session, owner.organization, trigger_url="https://bot.example.com/t", trigger_conditions=["install"]
    )
    app.state.settings = settings.model_copy(update={"public_base_url": "https://service.example.com/"})  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    # Behind a TLS-terminating proxy: the cookie is Secure because the public origin is https.
    async with httpx.AsyncClient(transport=transport, base_url="https://internal:8000") as proxied:
        page = await log_in(proxied, public.id, installer.user.email)
        response = await proxied.post(
            f"/apps/{public.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT}
        )
    query = query_of(response.headers["location"])
    assert query["redirect_uri"] == "https://service.example.com" + NEXT
    assert decode_trigger_data(query["data"], app_secret=public.secret)["sub"] == "service.example.com"


# --- refusals --------------------------------------------------------------------------------


async def test_already_installed(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session, name="Shop Inc")
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    first = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert first.status_code == 303
    # The same (stale) form again: the page explains, nothing is installed twice.
    second = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert second.status_code == 409
    assert "Helpful Bot is already installed in Shop Inc." in second.text
    assert f'href="{NEXT}"' in second.text.replace("&amp;", "&")
    shown = await client.get(install_url(app.id, NEXT))
    assert shown.status_code == 409
    assert "Already installed" in shown.text


async def test_already_installed_when_a_concurrent_install_won(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from tests.fixtures.installflow import install_directly

    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session, name="Shop Inc")
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    await install_directly(session, installer, app)  # e.g. through the API, in another tab
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert response.status_code == 409
    assert "already installed" in response.text


async def test_feature_missing(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session, name="Shop Inc", features=[])
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    assert page.status_code == 403
    assert "Apps feature missing" in page.text
    assert "Shop Inc does not have the Apps feature" in page.text
    assert "The operator of this service can enable it" in page.text and "giosg support" not in page.text
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert response.status_code == 403
    assert await _installation(session, app.id, installer.org_id) is None


async def test_no_active_subscription(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session, name="Lapsed Ltd", subscription_days=-1)
    app = await make_public_app(session, owner.organization)
    page = await log_in(client, app.id, installer.user.email)
    assert page.status_code == 403
    assert "Lapsed Ltd does not have an active subscription" in page.text


@pytest.mark.parametrize("which", ["private", "unapproved", "unknown", "malformed"])
async def test_app_not_installable(client: httpx.AsyncClient, session: AsyncSession, which: str) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    visible = await make_public_app(session, owner.organization)
    target: str = {
        "private": str((await make_app(session, owner.organization, name="Private")).id),
        "unapproved": str(
            (await make_app(session, owner.organization, is_available_to_anyone=True, is_approved=False)).id
        ),
        "unknown": str(uuid.uuid4()),
        "malformed": "not-a-uuid",
    }[which]
    page = await log_in(client, visible.id, installer.user.email)
    response = await client.get(install_url(target, NEXT))
    assert response.status_code == 404
    assert "App not available" in response.text
    assert "Private" not in response.text
    posted = await client.post(f"/apps/{target}/install", data={"csrf_token": csrf_of(page), "next": NEXT})
    assert posted.status_code == 404


async def test_owner_may_install_its_own_private_app(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    installer = await make_installer(session, name="Maker")
    app = await make_app(session, installer.organization, name="In-house")
    page = await log_in(client, app.id, installer.user.email)
    assert "Install In-house?" in page.text
    assert 'Provided by <strong id="app-owner">Maker</strong>' in page.text


async def test_pages_escape_app_data(client: httpx.AsyncClient, session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(
        session,
        owner.organization,
        name="<script>alert(1)</script>",
        description='"><img src=x onerror=alert(1)>',
        terms_of_service_url="javascript:alert(1)",
    )
    page = await log_in(client, app.id, installer.user.email)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text
    assert "javascript:" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none' blocks scripts


async def test_stylesheet(client: httpx.AsyncClient) -> None:
    response = await client.get("/apps/_static/install.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert ".card" in response.text


async def test_install_flow_is_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/apps/")]
    assert "/identity/token" in paths


async def test_next_is_judged_by_the_public_origin(
    app: object, session: AsyncSession, settings: Settings
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    public = await make_public_app(session, owner.organization)
    app.state.settings = settings.model_copy(update={"public_base_url": "https://service.example.com/"})  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://internal:8000") as proxied:
        page = await log_in(
            proxied, public.id, installer.user.email, next_="https://service.example.com/done"
        )
        assert 'name="next" value="/done"' in page.text
        internal = await proxied.get(install_url(public.id, "https://internal:8000/done"))
    assert internal.status_code == 400
