"""The app trust model (issue 12): what an installed app may do, and the provider's app-user tokens.

An app principal (a trigger's token with the app secret, an app-user token, a webhook's
`app_user_auth`) acts in the installing organization only, within the installation's
`allowed_scopes`, and never reaches app-provider resources (README "The permission model").
Fast paths are off: they are being removed, and what is tested is the routes' rule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import decode_access_token, encode_access_token
from apps_api.models import App, AppInstallation
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant, make_app, make_tenant
from tests.fixtures.installflow import csrf_of, log_in, make_bot_app, make_installer, query_of

ORGS = "/api/v5/orgs"


def _auth(value: str) -> dict[str, str]:
    return {"Authorization": value}


def _webhook_body() -> dict[str, Any]:
    return {
        "endpoint_url": "https://attacker.example.com/hook",
        "channel_subscriptions": [
            {
                "channel_pattern": "/api/v5/orgs/{organization_id}/users",
                "is_additions_subscribed": True,
                "is_changes_subscribed": True,
                "is_removals_subscribed": True,
            }
        ],
    }


def _app_body() -> dict[str, Any]:
    return {
        "name": "Planted app",
        "description": "Made with a trigger token",
        "is_app_user_required": False,
        "terms_of_service_url": "https://x.example.com/tos",
        "privacy_policy_url": "https://x.example.com/privacy",
    }


# --- point 1: a trigger token is not a skeleton key ----------------------------------------------


async def test_a_trigger_token_never_reaches_the_installers_provider_resources(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The issue's reproduction: an admin of a provider organization installs a third-party app in
    the browser ("No additional access"); the app's trigger token with its secret cannot list
    or create the installer's owned apps, nor put a webhook on them (on 27573ce: 200, 201, 201)."""
    vendor = await make_tenant(session, name="Third party")
    installer = await make_installer(session, name="Provider installer", features=["apps", "app_provider"])
    own_app = await make_app(session, installer.organization, name="Installer's own app")
    third_party = await make_bot_app(
        session,
        vendor.organization,
        required_scopes=[],
        trigger_url="https://vendor.example.com/trigger",
        trigger_conditions=["install"],
    )
    page = await log_in(client, third_party.id, installer.user.email, next_="/settings/apps")
    assert "No additional access" in page.text
    installed = await client.post(
        f"/apps/{third_party.id}/install",
        data={"csrf_token": csrf_of(page), "next": "/settings/apps", "first_name": "Bot", "last_name": "B"},
    )
    assert installed.status_code == 303, installed.text
    token = query_of(installed.headers["location"])["token"]
    app_headers = _auth(f"GIOSGAPP {token} {third_party.secret}")
    mine = f"{ORGS}/{installer.org_id}/owned_apps"

    listed = await client.get(mine, headers=app_headers)
    assert listed.status_code == 403, listed.text
    assert own_app.secret not in listed.text
    assert (await client.post(mine, json=_app_body(), headers=app_headers)).status_code == 403
    hooked = await client.post(f"{mine}/{own_app.id}/webhooks", json=_webhook_body(), headers=app_headers)
    assert hooked.status_code == 403
    assert (await client.get(f"{mine}/{own_app.id}/webhooks", headers=app_headers)).status_code == 403
    # The installation granted nothing: not even the installer's `settings` data.
    apps = await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=app_headers)
    assert apps.status_code == 403
    # The control: the admin's own token does all of it.
    assert (await client.get(mine, headers=installer.headers)).status_code == 200
    assert (await client.get(f"{mine}/{own_app.id}/webhooks", headers=installer.headers)).status_code == 200


async def test_scopes_open_the_installers_data_but_never_provider_routes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """user's permissions ∩ allowed_scopes, in the installing organization only."""
    vendor = await make_tenant(session, name="Vendor")
    installer = await make_installer(session, features=["apps", "app_provider"])
    app = await make_bot_app(session, vendor.organization, required_scopes=[])
    installation = await _install(client, installer, app.id, scopes=["settings"])
    token = encode_access_token(
        secret_key=settings.secret_key,
        user_id=installer.user.id,
        organization_id=installer.org_id,
        app_id=app.id,
        installation_id=installation["id"],
    )
    headers = _auth(f"GIOSGAPP {token} {app.secret}")
    ok = await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=headers)
    assert ok.status_code == 200
    assert (await client.get(f"{ORGS}/{installer.org_id}/owned_apps", headers=headers)).status_code == 403
    assert (await client.get(f"{ORGS}/{vendor.org_id}/owned_apps", headers=headers)).status_code == 403
    # The triggering user's own permissions bound it too: without `settings`, no `settings`.
    installer.user.permissions = ["users"]
    await session.flush()
    refused = await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=headers)
    assert refused.status_code == 403
    # A trigger token is never a Bearer credential on its own (it travels in a URL).
    assert (await client.get("/api/v5/public_apps", headers=_auth(f"Bearer {token}"))).status_code == 401


# --- point 4: app-user tokens for the provider -----------------------------------------------------


async def _install(
    client: httpx.AsyncClient, tenant: Tenant, app_id: uuid.UUID, scopes: list[str]
) -> dict[str, Any]:
    response = await client.post(
        f"{ORGS}/{tenant.org_id}/app_installations",
        json={"app_id": str(app_id), "allowed_scopes": scopes},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _tokens_path(provider: Tenant, app_id: uuid.UUID, installation_id: Any) -> str:
    return f"{ORGS}/{provider.org_id}/owned_apps/{app_id}/installations/{installation_id}/app_user_tokens"


async def test_app_user_token_lifecycle(client: httpx.AsyncClient, session: AsyncSession) -> None:
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    installer = await make_installer(session, features=["apps", "app_provider"])
    app = await make_bot_app(session, provider.organization, required_scopes=[])
    installation = await _install(client, installer, app.id, scopes=["settings"])
    path = _tokens_path(provider, app.id, installation["id"])

    minted = await client.post(path, headers=provider.headers)
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert set(body) == {
        "id",
        "token",
        "app_user_id",
        "installation_id",
        "organization_id",
        "created_at",
        "expires_at",
    }
    assert body["app_user_id"] == installation["app_user"]["id"]
    assert body["installation_id"] == installation["id"]
    assert body["organization_id"] == str(installer.org_id)
    assert body["expires_at"] is None
    key = body["token"]
    headers = _auth(f"Token {key}")

    # Within the installation's scopes, in the installing organization: the app user.
    mine = await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=headers)
    assert mine.status_code == 200, mine.text
    # Never a provider route, not even of its own organization, and no other organization.
    assert (await client.get(f"{ORGS}/{installer.org_id}/owned_apps", headers=headers)).status_code == 403
    assert (await client.get(f"{ORGS}/{provider.org_id}/owned_apps", headers=headers)).status_code == 403
    assert (await client.get(path, headers=headers)).status_code == 403
    assert (await client.post(path, headers=headers)).status_code == 403
    # Outside the scopes: 403.
    row = await session.get(AppInstallation, uuid.UUID(installation["id"]))
    assert row is not None
    row.allowed_scopes = ["users"]
    await session.flush()
    outside = await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=headers)
    assert outside.status_code == 403
    row.allowed_scopes = ["settings"]
    await session.flush()

    # The list: paginated, never the key.
    expires_at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    second = await client.post(path, json={"expires_at": expires_at.isoformat()}, headers=provider.headers)
    assert second.status_code == 201, second.text
    assert second.json()["expires_at"] == expires_at.isoformat().replace("+00:00", "Z")
    page = await client.get(path, params={"page_size": 1}, headers=provider.headers)
    assert page.status_code == 200, page.text
    assert "token" not in page.json()["results"][0] and key not in page.text
    assert page.json()["next"] is not None
    rest = await client.get(page.json()["next"], headers=provider.headers)
    listed = {item["id"] for item in page.json()["results"] + rest.json()["results"]}
    assert listed == {body["id"], second.json()["id"]}

    # Revoked: 401 from then on, gone from the list, a second revoke is a 404.
    assert (await client.delete(f"{path}/{body['id']}", headers=provider.headers)).status_code == 204
    assert (await client.get("/api/v5/public_apps", headers=headers)).status_code == 401
    assert (await client.delete(f"{path}/{body['id']}", headers=provider.headers)).status_code == 404
    remaining = await client.get(path, headers=provider.headers)
    assert [item["id"] for item in remaining.json()["results"]] == [second.json()["id"]]
    # Another organization's admin cannot see or mint them (the app is not theirs).
    assert (await client.post(path, headers=installer.headers)).status_code == 403
    foreign = _tokens_path(installer, app.id, installation["id"])
    assert (await client.post(foreign, headers=installer.headers)).status_code == 404


async def test_a_provider_cannot_revoke_another_tenants_app_user_token(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Another tenant's token id on the provider's own installation path: 404, and it stays live."""
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    rival = await make_tenant(session, name="Rival", features=["apps", "app_provider"])
    installer = await make_installer(session)
    app = await make_bot_app(session, provider.organization, required_scopes=[])
    rival_app = await make_bot_app(session, rival.organization, required_scopes=[], name="Rival bot")
    installation = await _install(client, installer, app.id, scopes=["settings"])
    rival_installation = await _install(client, installer, rival_app.id, scopes=["settings"])
    minted = await client.post(
        _tokens_path(rival, rival_app.id, rival_installation["id"]), headers=rival.headers
    )
    assert minted.status_code == 201, minted.text
    rival_token = minted.json()
    headers = _auth(f"Token {rival_token['token']}")
    mine = f"{ORGS}/{installer.org_id}/app_installations"
    assert (await client.get(mine, headers=headers)).status_code == 200

    own_path = _tokens_path(provider, app.id, installation["id"])
    refused = await client.delete(f"{own_path}/{rival_token['id']}", headers=provider.headers)
    assert refused.status_code == 404
    assert (await client.get(mine, headers=headers)).status_code == 200


async def test_app_user_tokens_need_an_app_user_and_a_future_expiry(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    installer = await make_installer(session)
    botless = await make_app(session, provider.organization, is_available_to_anyone=True, is_approved=True)
    installation = await _install(client, installer, botless.id, scopes=[])
    response = await client.post(
        _tokens_path(provider, botless.id, installation["id"]), headers=provider.headers
    )
    assert response.status_code == 404
    assert "app user" in response.json()["detail"]
    bot = await make_bot_app(session, provider.organization, required_scopes=[])
    with_bot = await _install(client, installer, bot.id, scopes=[])
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    refused = await client.post(
        _tokens_path(provider, bot.id, with_bot["id"]), json={"expires_at": past}, headers=provider.headers
    )
    assert refused.status_code == 400 and "expires_at" in refused.json()["errors"]
    unknown = await client.post(_tokens_path(provider, bot.id, uuid.uuid4()), headers=provider.headers)
    assert unknown.status_code == 404


async def test_an_expired_app_user_token_is_401(client: httpx.AsyncClient, session: AsyncSession) -> None:
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    installer = await make_installer(session)
    app = await make_bot_app(session, provider.organization, required_scopes=[])
    installation = await _install(client, installer, app.id, scopes=["settings"])
    path = _tokens_path(provider, app.id, installation["id"])
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    key = (await client.post(path, json={"expires_at": soon}, headers=provider.headers)).json()["token"]
    headers = _auth(f"Token {key}")
    assert (
        await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=headers)
    ).status_code == 200
    from sqlalchemy import update

    from apps_api.models import ApiToken

    await session.execute(
        update(ApiToken)
        .where(ApiToken.app_installation_id == uuid.UUID(installation["id"]))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    assert (
        await client.get(f"{ORGS}/{installer.org_id}/app_installations", headers=headers)
    ).status_code == 401


@pytest.mark.parametrize("how", ["uninstalled_by_installer", "uninstalled_by_owner", "app_deleted"])
async def test_uninstalling_or_deleting_the_app_revokes_app_user_tokens(
    client: httpx.AsyncClient, session: AsyncSession, how: str
) -> None:
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    installer = await make_installer(session)
    app = await make_bot_app(session, provider.organization, required_scopes=[])
    installation = await _install(client, installer, app.id, scopes=["settings"])
    path = _tokens_path(provider, app.id, installation["id"])
    keys = [(await client.post(path, headers=provider.headers)).json()["token"] for _ in range(2)]
    for key in keys:
        check = await client.get(
            f"{ORGS}/{installer.org_id}/app_installations", headers=_auth(f"Token {key}")
        )
        assert check.status_code == 200
    if how == "uninstalled_by_installer":
        url = f"{ORGS}/{installer.org_id}/app_installations/{installation['id']}"
        done = await client.delete(url, headers=installer.headers)
    elif how == "uninstalled_by_owner":
        url = f"{ORGS}/{provider.org_id}/owned_apps/{app.id}/installations/{installer.org_id}"
        done = await client.delete(url, headers=provider.headers)
    else:
        done = await client.delete(f"{ORGS}/{provider.org_id}/owned_apps/{app.id}", headers=provider.headers)
    assert done.status_code == 204, done.text
    for key in keys:
        assert (await client.get("/api/v5/public_apps", headers=_auth(f"Token {key}"))).status_code == 401


# --- the header's forms: each credential counts only in its own form -------------------------------


async def _installed_bot(
    client: httpx.AsyncClient, session: AsyncSession
) -> tuple[Tenant, App, dict[str, Any]]:
    """An installer, a bot app of another organization installed there with `settings`, and the
    installation as the API gives it."""
    vendor = await make_tenant(session, name="Vendor")
    installer = await make_installer(session, features=["apps", "app_provider"])
    app = await make_bot_app(session, vendor.organization, required_scopes=[])
    return installer, app, await _install(client, installer, app.id, scopes=["settings"])


def _app_user_access_token(
    settings: Settings, installer: Tenant, app: App, installation: dict[str, Any]
) -> str:
    """A webhook's `app_user_auth.access_token`: the installation's app user, usable alone."""
    return encode_access_token(
        secret_key=settings.secret_key,
        user_id=uuid.UUID(installation["app_user"]["id"]),
        organization_id=installer.org_id,
        app_id=app.id,
        installation_id=uuid.UUID(installation["id"]),
        as_app_user=True,
    )


async def test_a_webhooks_app_user_access_token_works_as_bearer_and_never_as_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """`Bearer <access_token>` is how giosg's integrations use `app_user_auth`; the `Token` scheme
    is for API token keys only, so the same access token under it is a 401."""
    installer, app, installation = await _installed_bot(client, session)
    token = _app_user_access_token(settings, installer, app, installation)
    mine = f"{ORGS}/{installer.org_id}/app_installations"
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await client.get(mine, headers=_auth(f"{scheme} {token}"))
        assert response.status_code == 200, (scheme, response.text)
    for scheme in ("Token", "token"):
        assert (await client.get(mine, headers=_auth(f"{scheme} {token}"))).status_code == 401, scheme


@pytest.mark.parametrize(
    "header",
    [
        "Bearer {token} {secret}",
        "Token {token} {secret}",
        "Basic {token} {secret}",
        "Zzz {token} {secret}",
        "GIOSGAPP {token} {secret} extra",
        "GIOSGAPP {token}",
    ],
)
async def test_a_trigger_token_and_secret_count_only_as_giosgapp_token_secret(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, header: str
) -> None:
    """A trigger's token with the app secret authenticates as exactly `GIOSGAPP <token> <secret>`:
    under any other scheme (sorting before or after "giosgapp") or with a part more or less, 401."""
    installer, app, installation = await _installed_bot(client, session)
    token = encode_access_token(
        secret_key=settings.secret_key,
        user_id=installer.user.id,
        organization_id=installer.org_id,
        app_id=app.id,
        installation_id=uuid.UUID(installation["id"]),
    )
    mine = f"{ORGS}/{installer.org_id}/app_installations"
    control = await client.get(mine, headers=_auth(f"GIOSGAPP {token} {app.secret}"))
    assert control.status_code == 200, control.text
    response = await client.get(mine, headers=_auth(header.format(token=token, secret=app.secret)))
    assert response.status_code == 401, response.text


def _with_a_dot_in_the_payload(token: str, secret_key: str) -> str:
    """The token's claims signed again as `header.pay.load.signature`: a fourth part, which PyJWT
    still decodes (base64 decoding skips the dot) when the payload's length is a multiple of 4."""
    claims = decode_access_token(token, secret_key=secret_key)
    assert claims is not None
    header = jwt.get_unverified_header(token)
    for filler in range(4):
        payload = _b64url(json.dumps({**claims, "x": "x" * filler}, separators=(",", ":")).encode())
        if len(payload) % 4 == 0:
            signing_input = f"{_b64url(json.dumps(header).encode())}.{payload[:8]}.{payload[8:]}"
            signature = hmac.new(secret_key.encode(), signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64url(signature)}"
    raise AssertionError("unreachable: one of four lengths is a multiple of 4")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_bearer_credential_with_three_dots_is_never_an_access_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """An access token is a JWS in compact form, three parts; a credential with another number of
    dots is looked up as an API token key, even one signed with our key that PyJWT would decode."""
    installer, app, installation = await _installed_bot(client, session)
    token = _app_user_access_token(settings, installer, app, installation)
    dotted = _with_a_dot_in_the_payload(token, settings.secret_key)
    assert dotted.count(".") == 3
    assert decode_access_token(dotted, secret_key=settings.secret_key) is not None
    mine = f"{ORGS}/{installer.org_id}/app_installations"
    assert (await client.get(mine, headers=_auth(f"Bearer {token}"))).status_code == 200
    assert (await client.get(mine, headers=_auth(f"Bearer {dotted}"))).status_code == 401
