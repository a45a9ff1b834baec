"""POST /identity/token: app user codes for persistent app-user API tokens, and every RFC 6749 refusal."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.auth.access_tokens import encode_access_token
from apps_api.auth.secrets import app_secret_matches, live_previous_secret
from apps_api.kit.db import engine_read_connections, engine_request_sessions
from apps_api.main import create_app
from apps_api.models import ApiToken, AppUserCode
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.factories import make_tenant
from tests.fixtures.installflow import (
    delete_organizations,
    install_directly,
    issue_code,
    make_bot_app,
    make_installer,
    token_form,
)

TOKEN = "/identity/token"


async def _installed_bot(session: AsyncSession) -> tuple[Any, Any, Any]:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    return installer, app, installation


def _assert_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert set(body) == {"error", "error_description"}
    assert response.headers["cache-control"] == "no-store"


async def test_code_exchange_gives_a_persistent_token_of_the_app_user(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    installer, app, installation = await _installed_bot(session)
    code = await issue_code(session, installation)
    response = await client.post(TOKEN, data=token_form(app, code))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == {
        "access_token": body["access_token"],
        "token_type": "Token",
        "user_id": str(installation.app_user_id),
        "organization_id": str(installer.org_id),
        "app_id": str(app.id),
    }
    stored = (
        await session.execute(select(ApiToken).where(ApiToken.user_id == installation.app_user_id))
    ).scalar_one()
    assert stored.app_installation_id == installation.id
    assert stored.expires_at is None and stored.revoked_at is None

    # What it returns works as `Authorization: <token_type> <access_token>`, and acts as the app
    # user within the installation's allowed_scopes (README "The permission model").
    headers = {"Authorization": f"{body['token_type']} {body['access_token']}"}
    installation.allowed_scopes = ["users"]
    await session.flush()
    refused = await client.get(f"/api/v5/orgs/{installer.org_id}/app_installations", headers=headers)
    assert refused.status_code == 403
    assert "settings" in refused.json()["detail"]
    # With `settings` in the installation's scopes it reads its organization's data.
    bot = installation.app_user
    installation.allowed_scopes = ["settings", "users"]
    await session.flush()
    listed = await client.get(f"/api/v5/orgs/{installer.org_id}/app_installations", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["results"]] == [str(installation.id)]
    assert listed.json()["results"][0]["app_user"]["id"] == str(bot.id)
    # ...and only its own organization's.
    other = await make_tenant(session, name="Elsewhere")
    foreign = await client.get(f"/api/v5/orgs/{other.org_id}/app_installations", headers=headers)
    assert foreign.status_code == 403


async def test_uninstalling_revokes_the_token_and_kills_unused_codes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from apps_api.installations.service import uninstall

    installer, app, installation = await _installed_bot(session)
    installation.app_user.permissions = ["settings"]
    used = await issue_code(session, installation)
    token = (await client.post(TOKEN, data=token_form(app, used))).json()["access_token"]
    unused = await issue_code(session, installation)
    headers = {"Authorization": f"Token {token}"}
    assert (await client.get("/api/v5/public_apps", headers=headers)).status_code == 200
    await uninstall(session=session, installation=installation, actor_user_id=installer.user.id)
    assert (await client.get("/api/v5/public_apps", headers=headers)).status_code == 401
    _assert_error(await client.post(TOKEN, data=token_form(app, unused)), "invalid_grant")


async def test_a_code_works_once(client: httpx.AsyncClient, session: AsyncSession) -> None:
    _, app, installation = await _installed_bot(session)
    code = await issue_code(session, installation)
    assert (await client.post(TOKEN, data=token_form(app, code))).status_code == 200
    _assert_error(await client.post(TOKEN, data=token_form(app, code)), "invalid_grant")


async def test_an_expired_code_is_refused(client: httpx.AsyncClient, session: AsyncSession) -> None:
    _, app, installation = await _installed_bot(session)
    code = await issue_code(session, installation)
    await session.execute(
        update(AppUserCode)
        .where(AppUserCode.app_installation_id == installation.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    _assert_error(await client.post(TOKEN, data=token_form(app, code)), "invalid_grant")


async def test_codes_expire_within_minutes(session: AsyncSession) -> None:
    _, _, installation = await _installed_bot(session)
    await issue_code(session, installation)
    row = (
        await session.execute(select(AppUserCode).where(AppUserCode.app_installation_id == installation.id))
    ).scalar_one()
    assert timedelta(minutes=1) <= row.expires_at - row.created_at <= timedelta(minutes=15)


async def test_a_code_of_another_app_is_refused_and_stays_usable(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    installer, app, installation = await _installed_bot(session)
    other_app = await make_bot_app(session, installer.organization, name="Other")
    code = await issue_code(session, installation)
    _assert_error(await client.post(TOKEN, data=token_form(other_app, code)), "invalid_grant")
    # The other app's attempt did not burn the code.
    assert (await client.post(TOKEN, data=token_form(app, code))).status_code == 200


async def test_a_deleted_app_user_gets_no_token(client: httpx.AsyncClient, session: AsyncSession) -> None:
    _, app, installation = await _installed_bot(session)
    code = await issue_code(session, installation)
    installation.app_user.deleted_at = utcnow()
    await session.flush()
    _assert_error(await client.post(TOKEN, data=token_form(app, code)), "invalid_grant")


async def test_old_codes_are_cleaned_up_when_a_new_one_is_issued(session: AsyncSession) -> None:
    _, _, installation = await _installed_bot(session)
    await issue_code(session, installation)
    await session.execute(
        update(AppUserCode)
        .where(AppUserCode.app_installation_id == installation.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await issue_code(session, installation)
    count = len(
        (
            await session.execute(
                select(AppUserCode.id).where(AppUserCode.app_installation_id == installation.id)
            )
        ).all()
    )
    assert count == 1


@pytest.mark.parametrize("missing", ["code", "client_id", "client_secret"])
async def test_missing_parameters_are_invalid_request(
    client: httpx.AsyncClient, session: AsyncSession, missing: str
) -> None:
    _, app, installation = await _installed_bot(session)
    code = await issue_code(session, installation)
    response = await client.post(TOKEN, data=token_form(app, code, **{missing: None}))
    _assert_error(response, "invalid_request")
    assert missing in response.json()["error_description"]


async def test_missing_grant_type_and_empty_body_are_invalid_request(client: httpx.AsyncClient) -> None:
    _assert_error(await client.post(TOKEN, data={"code": "x"}), "invalid_request")
    _assert_error(await client.post(TOKEN), "invalid_request")
    _assert_error(await client.post(TOKEN, json={"grant_type": "authorization_code"}), "invalid_request")


@pytest.mark.parametrize(
    "grant_type", ["password", "client_credentials", "refresh_token", "AUTHORIZATION_CODE"]
)
async def test_other_grant_types_are_unsupported(
    client: httpx.AsyncClient, session: AsyncSession, grant_type: str
) -> None:
    _, app, installation = await _installed_bot(session)
    code = await issue_code(session, installation)
    _assert_error(
        await client.post(TOKEN, data=token_form(app, code, grant_type=grant_type)), "unsupported_grant_type"
    )


@pytest.mark.parametrize(
    "case", ["unknown_app", "malformed_id", "wrong_secret", "secret_of_another_app", "the_dummy_secret"]
)
async def test_bad_client_credentials_are_invalid_client(
    client: httpx.AsyncClient, session: AsyncSession, case: str
) -> None:
    import uuid

    installer, app, installation = await _installed_bot(session)
    other_app = await make_bot_app(session, installer.organization, name="Other")
    code = await issue_code(session, installation)
    overrides = {
        "unknown_app": {"client_id": str(uuid.uuid4())},
        "malformed_id": {"client_id": "not-an-id"},
        "wrong_secret": {"client_secret": app.secret[:-4] + "AAA="},
        "secret_of_another_app": {"client_secret": other_app.secret},
        # What the check compares against when an app has no previous secret: never a secret.
        "the_dummy_secret": {"client_secret": "0" * 64},
    }[case]
    _assert_error(await client.post(TOKEN, data=token_form(app, code, **overrides)), "invalid_client")
    # A failed client authentication does not consume the code.
    assert (await client.post(TOKEN, data=token_form(app, code))).status_code == 200


async def test_the_dummy_secret_matches_no_app_without_a_previous_secret(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """64 zeros stand in for a missing previous secret so every check does the same work; they
    must never authenticate an app (with its app-secret check, or as GIOSGAPP)."""
    installer, app, installation = await _installed_bot(session)
    assert app.previous_secret is None
    assert app_secret_matches(app, "0" * 64) is False
    assert app_secret_matches(None, "0" * 64) is False
    assert app_secret_matches(app, app.secret) is True
    token = encode_access_token(
        secret_key=settings.secret_key,
        user_id=installer.user.id,
        organization_id=installer.org_id,
        app_id=app.id,
        installation_id=installation.id,
    )
    for secret, status in ((app.secret, 200), ("0" * 64, 401)):
        response = await client.get(
            "/api/v5/public_apps", headers={"Authorization": f"GIOSGAPP {token} {secret}"}
        )
        assert response.status_code == status, secret


@pytest.mark.parametrize(
    ("previous", "expires_in", "live"),
    [
        ("old", timedelta(hours=1), True),
        ("old", -timedelta(seconds=1), False),
        ("old", timedelta(0), False),  # the grace ends at its instant
        ("old", None, False),  # no end recorded: not live
        (None, timedelta(hours=1), False),
    ],
)
def test_a_previous_secret_is_live_only_with_an_unexpired_grace(
    previous: str | None, expires_in: timedelta | None, live: bool
) -> None:
    now = utcnow()
    app = SimpleNamespace(
        secret="new",
        previous_secret=previous,
        previous_secret_expires_at=None if expires_in is None else now + expires_in,
    )
    assert live_previous_secret(app, now=now) == ("old" if live else None)
    # Judged on the clock it is given (here an hour earlier), not on the wall clock.
    earlier = "old" if previous is not None and expires_in is not None else None
    assert live_previous_secret(app, now=now - timedelta(hours=1)) == earlier


async def test_unknown_code_is_invalid_grant(client: httpx.AsyncClient, session: AsyncSession) -> None:
    _, app, _ = await _installed_bot(session)
    _assert_error(await client.post(TOKEN, data=token_form(app, "no-such-code")), "invalid_grant")


async def test_concurrent_exchanges_of_one_code_succeed_once(
    settings: Settings, engine: AsyncEngine, arq_pool: Any
) -> None:
    """Committed data, separate connections: the UPDATE ... WHERE used_at IS NULL decides."""
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        owner = await make_tenant(setup, name="Race Owner")
        installer = await make_installer(setup, name="Race Installer")
        app = await make_bot_app(setup, owner.organization)
        installation = await install_directly(setup, installer, app)
        codes = [await issue_code(setup, installation) for _ in range(5)]
        await setup.commit()
    web = create_app(settings)
    web.state.engine = engine
    web.state.request_sessions = engine_request_sessions(engine)
    web.state.read_connections = engine_read_connections(engine)
    web.state.arq = arq_pool
    try:
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for code in codes:
                responses = await asyncio.gather(
                    *(client.post(TOKEN, data=token_form(app, code)) for _ in range(4))
                )
                statuses = sorted(response.status_code for response in responses)
                assert statuses == [200, 400, 400, 400], [response.text for response in responses]
                assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
        async with AsyncSession(engine) as check:
            tokens = (
                await check.execute(
                    select(ApiToken.id).where(ApiToken.app_installation_id == installation.id)
                )
            ).all()
            assert len(tokens) == len(codes)
    finally:
        await delete_organizations(engine, [owner.org_id, installer.org_id])


async def test_token_endpoint_is_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][TOKEN]["post"]
    assert operation["tags"] == ["Identity"]
    assert "application/x-www-form-urlencoded" in operation["requestBody"]["content"]
    assert operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OAuthError"
    )
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AppUserToken"
    )
    assert "422" not in operation["responses"]
