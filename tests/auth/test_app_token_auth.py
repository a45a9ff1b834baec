"""`Authorization: GIOSGAPP <token> <app_secret>`: trigger access tokens on the API."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import encode_access_token
from apps_api.models import Organization
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.factories import make_tenant, make_user
from tests.fixtures.installflow import install_directly, make_bot_app, make_installer, make_public_app

PUBLIC = "/api/v5/public_apps"
# Ids that sort before and after any other (uuid4 ids are random): rows made with them stand
# on a chosen side of the rows a test looks up.
LOWEST_ID, HIGHEST_ID = uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)


async def _setup(session: AsyncSession) -> tuple[Any, Any, Any, Any]:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    return owner, installer, app, installation


def _token(settings: Settings, installer: Any, app: Any, installation: Any, **kw: Any) -> str:
    return encode_access_token(
        secret_key=kw.pop("secret_key", settings.secret_key),
        user_id=kw.pop("user_id", installer.user.id),
        organization_id=kw.pop("organization_id", installer.org_id),
        app_id=kw.pop("app_id", app.id),
        installation_id=kw.pop("installation_id", installation.id if installation is not None else None),
        **kw,
    )


async def test_valid_token_and_secret_authenticate_as_the_user(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, installer, app, installation = await _setup(session)
    token = _token(settings, installer, app, installation)
    response = await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {token} {app.secret}"})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(app.id)]
    # The principal is the acting user in their organization: org routes of that org work.
    mine = await client.get(
        f"/api/v5/orgs/{installer.org_id}/app_installations",
        headers={"Authorization": f"giosgapp  {token}   {app.secret} "},
    )
    assert mine.status_code == 200
    assert [item["id"] for item in mine.json()["results"]] == [str(installation.id)]


async def test_token_without_installation_id_works_while_the_user_is_live(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, installer, app, _ = await _setup(session)
    token = _token(settings, installer, app, None)
    response = await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {token} {app.secret}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "wrong_secret",
        "secret_of_another_app",
        "expired",
        "tampered",
        "signed_with_another_key",
        "wrong_audience",
        "deleted_user",
        "user_of_another_org",
        "uninstalled",
        "installation_of_another_app",
        "unknown_app",
        "token_only",
        "three_parts",
        "api_token_as_giosgapp",
        "without_app_id",
        "without_sub",
        "without_org_id",
        "installation_id_not_an_id",
    ],
)
async def test_refused_credentials_are_401(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, case: str
) -> None:
    owner, installer, app, installation = await _setup(session)
    other_app = await make_public_app(session, owner.organization, name="Other")
    token = _token(settings, installer, app, installation)
    secret = app.secret
    if case == "wrong_secret":
        secret = app.secret[:-4] + "AAA="
    elif case == "secret_of_another_app":
        secret = other_app.secret
    elif case == "expired":
        token = _token(settings, installer, app, installation, ttl=timedelta(seconds=-1))
    elif case == "tampered":
        header, _payload, signature = token.split(".")
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["sub"] = str(owner.user.id)
        forged = jwt.encode(claims, "guess", algorithm="HS256").split(".")[1]
        token = ".".join((header, forged, signature))
    elif case == "signed_with_another_key":
        token = _token(settings, installer, app, installation, secret_key="not-our-key-" + "x" * 32)
    elif case == "wrong_audience":
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["aud"] = "something-else"
        token = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    elif case == "deleted_user":
        installer.user.deleted_at = utcnow()
        await session.flush()
    elif case == "user_of_another_org":
        token = _token(settings, installer, app, installation, organization_id=owner.org_id)
    elif case == "uninstalled":
        from apps_api.installations.service import uninstall

        await uninstall(session=session, installation=installation, actor_user_id=None)
    elif case == "installation_of_another_app":
        token = _token(settings, installer, other_app, installation)
        secret = other_app.secret
    elif case == "unknown_app":
        token = _token(settings, installer, app, installation, app_id=uuid.uuid4())
    elif case.startswith("without_") or case == "installation_id_not_an_id":
        # Signed with our key, so only the claims' own check refuses it.
        claims = jwt.decode(token, options={"verify_signature": False})
        if case == "installation_id_not_an_id":
            claims["inst_id"] = "not-an-id"
        else:
            claims.pop(case.removeprefix("without_"))
        token = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    header_value = f"GIOSGAPP {token} {secret}"
    if case == "token_only":
        header_value = f"GIOSGAPP {token}"
    elif case == "three_parts":
        header_value = f"GIOSGAPP {token} {secret} extra"
    elif case == "api_token_as_giosgapp":
        header_value = f"GIOSGAPP {installer.token} {secret}"
    response = await client.get(PUBLIC, headers={"Authorization": header_value})
    assert response.status_code == 401, case
    assert response.json()["detail"] == "Invalid, expired or revoked token."


async def test_a_token_dies_with_its_installation_even_when_the_app_is_reinstalled(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from apps_api.installations.service import uninstall

    _, installer, app, installation = await _setup(session)
    old = _token(settings, installer, app, installation)
    assert (
        await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {old} {app.secret}"})
    ).status_code == 200
    await uninstall(session=session, installation=installation, actor_user_id=None)
    reinstalled = await install_directly(session, installer, app)
    assert reinstalled.id != installation.id
    new = _token(settings, installer, app, reinstalled)
    assert (
        await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {new} {app.secret}"})
    ).status_code == 200
    response = await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {old} {app.secret}"})
    assert response.status_code == 401


async def test_an_app_user_token_works_for_the_installations_app_user_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    assert installation.app_user_id is not None

    async def as_app_user(user_id: uuid.UUID) -> int:
        token = _token(settings, installer, app, installation, user_id=user_id, as_app_user=True)
        return (await client.get(PUBLIC, headers={"Authorization": f"Bearer {token}"})).status_code

    assert await as_app_user(installation.app_user_id) == 200
    assert await as_app_user(installer.user.id) == 401  # a person of the organization is no app user


async def test_the_token_is_not_an_api_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, installer, app, installation = await _setup(session)
    token = _token(settings, installer, app, installation)
    response = await client.get(PUBLIC, headers={"Authorization": f"Token {token}"})
    assert response.status_code == 401


async def test_access_checks_still_apply(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, installer, app, installation = await _setup(session)
    installer.user.permissions = ["users"]
    await session.flush()
    token = _token(settings, installer, app, installation)
    response = await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {token} {app.secret}"})
    assert response.status_code == 403


async def _status(client: httpx.AsyncClient, token: str, secret: str) -> int:
    return (await client.get(PUBLIC, headers={"Authorization": f"GIOSGAPP {token} {secret}"})).status_code


async def test_a_token_counts_with_its_own_apps_secret_only_among_apps_on_both_sides(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The secret checked is the token's app's, not that of an app whose id sorts next to it."""
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    # Stored before the token's app: a lookup that matched ids on either side of its id would
    # meet one of these first in PostgreSQL's scan of the table as stored (its plan for a small
    # table), and the lowest first in id order too.
    lowest = await make_public_app(session, owner.organization, name="Lowest", id=LOWEST_ID)
    highest = await make_public_app(session, owner.organization, name="Highest", id=HIGHEST_ID)
    app = await make_public_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    token = _token(settings, installer, app, installation)
    assert await _status(client, token, app.secret) == 200
    assert await _status(client, token, lowest.secret) == 401
    assert await _status(client, token, highest.secret) == 401


async def test_a_deleted_users_token_is_refused_though_live_users_sort_on_both_sides(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The token's user is the one its `sub` names: other live users of the organization never
    stand in for a deleted one."""
    _, installer, app, installation = await _setup(session)
    others = [(await make_user(session, installer.organization))[0] for _ in range(2)]
    below, user, above = sorted([installer.user, *others], key=lambda each: each.id)
    token = _token(settings, installer, app, installation, user_id=user.id)
    assert await _status(client, token, app.secret) == 200
    user.deleted_at = utcnow()
    await session.flush()
    assert await _status(client, token, app.secret) == 401
    for live in (below, above):
        live_token = _token(settings, installer, app, installation, user_id=live.id)
        assert await _status(client, live_token, app.secret) == 200


async def test_an_uninstalled_organizations_tokens_are_refused_though_orgs_on_both_sides_have_the_app(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The installation is the token's organization's own: the app installed in organizations
    whose ids sort either side of it lends it none."""
    from apps_api.installations.service import uninstall

    owner = await make_tenant(session, name="Owner")
    app = await make_public_app(session, owner.organization)
    installers = sorted(
        [await make_installer(session, name=f"Installer {n}") for n in range(3)], key=lambda each: each.org_id
    )
    installations = [await install_directly(session, installer, app) for installer in installers]
    installer, installation = installers[1], installations[1]
    named = _token(settings, installer, app, installation)
    unnamed = _token(settings, installer, app, None)
    assert await _status(client, named, app.secret) == 200
    assert await _status(client, unnamed, app.secret) == 200
    await uninstall(session=session, installation=installation, actor_user_id=None)
    assert await _status(client, named, app.secret) == 401
    assert await _status(client, unnamed, app.secret) == 401


async def test_a_token_naming_an_installation_that_is_not_the_live_one_is_refused_whichever_side_it_sorts(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A token that names an installation counts for that very one: the ids next to the live
    installation's (a gone installation's, after a reinstall) are refused."""
    _, installer, app, installation = await _setup(session)
    assert await _status(client, _token(settings, installer, app, installation), app.secret) == 200
    for step in (-1, 1):
        gone = uuid.UUID(int=installation.id.int + step)
        token = _token(settings, installer, app, installation, installation_id=gone)
        assert await _status(client, token, app.secret) == 401, step


async def test_the_principal_is_in_the_tokens_organization_among_organizations_of_lower_ids(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The principal's organization is the token's, not one whose id sorts before it."""
    # Stored first, with the lowest id: whichever way PostgreSQL scans the organizations (in id
    # order or as stored), it comes before the installer's.
    session.add(Organization(id=LOWEST_ID, name="Lowest", features=["apps"]))
    await session.flush()
    _, installer, app, installation = await _setup(session)
    token = _token(settings, installer, app, installation)
    response = await client.get(
        f"/api/v5/orgs/{installer.org_id}/app_installations",
        headers={"Authorization": f"GIOSGAPP {token} {app.secret}"},
    )
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(installation.id)]
