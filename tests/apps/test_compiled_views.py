"""The catalogue's GETs that read compiled rows answer byte for byte as their models did.

Public, partner and installed apps, app shares and an organization's users used to be ORM
objects validated into their response models; they are now rows of compiled statements turned
into JSON views. Each body here is compared with the model's own serialization of the ORM object
(what FastAPI wrote for the route's `response_model`), pages included, walked both ways.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from apps_api.apps.schemas import AppShare, PartnerApp, PublicApp
from apps_api.catalog import repository as catalog
from apps_api.catalog.views import InstalledApp
from apps_api.kit.pagination import Page
from apps_api.kit.schemas import UserEmbed
from apps_api.models import App, Asset, User
from apps_api.models import AppShare as AppShareRow
from apps_api.models.base import utcnow
from tests.fixtures.apps import install_via_api, owned_url, partners, share
from tests.fixtures.factories import Tenant, make_app, make_user

ODD = 'Zoë \u2028 "quoted" \\ <tag> \U0001f600 \t'


async def _app(session: AsyncSession, app: App) -> App:
    """The app as the ORM loads it now, with what its views embed."""
    loaded = await catalog.get_owned_app(
        session=session, organization_id=app.owned_by_organization_id, app_id=app.id
    )
    assert loaded is not None
    return loaded


def _bytes(model: type[BaseModel], value: Any) -> bytes:
    return model.model_validate(value).model_dump_json().encode()


async def _assert_pages(
    client: httpx.AsyncClient, tenant: Tenant, url: str, model: type[BaseModel], expected: Sequence[Any]
) -> None:
    """Every page (size 1, then 100), forwards and back, is the model's page of `expected`."""
    first = await client.get(url, params={"page_size": "100"}, headers=tenant.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (
        first.content
        == Page[model](  # type: ignore[valid-type]
            next=body["next"], previous=body["previous"], results=list(expected)
        )
        .model_dump_json()
        .encode()
    )
    pages: list[httpx.Response] = []
    link: str | None = url
    params: dict[str, str] | None = {"page_size": "1"}
    while link is not None:
        response = await client.get(link, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        pages.append(response)
        link, params = response.json()["next"], None
    assert len(pages) == len(expected)
    # The last page's previous link leads back over the same items.
    back = pages[-1].json()["previous"]
    if back is not None:
        previous = await client.get(back, headers=tenant.headers)
        assert previous.content == pages[-2].content
    for page, item in zip(pages, expected, strict=True):
        body = page.json()
        assert (
            page.content
            == Page[model](  # type: ignore[valid-type]
                next=body["next"], previous=body["previous"], results=[item]
            )
            .model_dump_json()
            .encode()
        )


async def test_app_views_match_the_models(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    await partners(session, tenant, other_tenant)
    icon = Asset(organization_id=other_tenant.org_id, url="https://cdn.example.com/ikon-ä.png", size=1)
    session.add(icon)
    await session.flush()
    now = utcnow().replace(microsecond=0)  # isoformat drops zero microseconds: both paths must agree
    offered = await make_app(
        session,
        other_tenant.organization,
        name=ODD,
        description=ODD,
        icon_asset_id=icon.id,
        is_available_to_anyone=True,
        is_approved=True,
        is_available_to_partners=True,
        required_scopes=["reports", "settings"],
        trigger_conditions=["install", "chat_end"],
        created_at=now,
    )
    shared = await make_app(session, other_tenant.organization, name="Shared", created_at=now - timedelta(1))
    await share(session, shared, tenant)
    await make_app(session, other_tenant.organization, name="Private")
    for app in (offered, shared):
        await install_via_api(client, tenant, app.id)

    offered, shared = await _app(session, offered), await _app(session, shared)
    headers = tenant.headers
    public = await client.get(f"/api/v5/public_apps/{offered.id}", headers=headers)
    assert public.status_code == 200, public.text
    assert public.content == _bytes(PublicApp, offered)
    orgs = f"/api/v5/orgs/{tenant.org_id}"
    for app in (offered, shared):
        partner = await client.get(f"{orgs}/partner_apps/{app.id}", headers=headers)
        assert partner.status_code == 200, partner.text
        assert partner.content == _bytes(PartnerApp, app)
        installed = await client.get(f"{orgs}/installed_apps/{app.id}", headers=headers)
        assert installed.status_code == 200, installed.text
        assert installed.content == _bytes(InstalledApp, app)
    expected = [PartnerApp.model_validate(app) for app in (offered, shared)]
    await _assert_pages(client, tenant, f"{orgs}/partner_apps", PartnerApp, expected)
    # The other side of the partnership sees none of them (they are Globex's own).
    reverse = await client.get(
        f"/api/v5/orgs/{other_tenant.org_id}/partner_apps", headers=other_tenant.headers
    )
    assert reverse.json()["results"] == []


async def test_share_views_match_the_models(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await make_app(session, other_tenant.organization)
    third = await make_app(session, tenant.organization)
    await partners(session, tenant, other_tenant)
    tenant.organization.name = ODD
    await session.flush()
    created = await client.post(
        owned_url(other_tenant, app.id, "/shares"),
        json={"organization_id": str(tenant.org_id)},
        headers=other_tenant.headers,
    )
    assert created.status_code == 201, created.text
    rows = (
        await session.scalars(
            select(AppShareRow)
            .where(AppShareRow.app_id == app.id)
            .options(joinedload(AppShareRow.organization))
            .execution_options(populate_existing=True)
        )
    ).all()
    (row,) = rows
    url = owned_url(other_tenant, app.id, "/shares")
    retrieved = await client.get(f"{url}/{row.id}", headers=other_tenant.headers)
    assert retrieved.status_code == 200, retrieved.text
    # The create answers through the model: the retrieve must be those bytes, and the model's.
    assert retrieved.content == created.content == _bytes(AppShare, row)
    await _assert_pages(client, other_tenant, url, AppShare, [AppShare.model_validate(row)])
    # Another app's share, or another owner's app: 404s.
    missing = await client.get(f"{url}/{uuid.uuid4()}", headers=other_tenant.headers)
    assert missing.json() == {"detail": "No app share found with the given ID."}
    foreign = await client.get(owned_url(tenant, app.id, f"/shares/{row.id}"), headers=tenant.headers)
    assert foreign.json() == {"detail": "No owned app found with the given ID."}
    other_app = await client.get(owned_url(tenant, third.id, f"/shares/{row.id}"), headers=tenant.headers)
    assert other_app.json() == {"detail": "No app share found with the given ID."}


async def test_users_match_the_model(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    odd, _ = await make_user(session, tenant.organization)
    odd.first_name, odd.last_name, odd.alias, odd.avatar_url = (
        ODD,
        None,
        None,
        "https://cdn.example.com/ä.png",
    )
    bot, _ = await make_user(session, tenant.organization)
    bot.first_name, bot.last_name, bot.alias, bot.is_bot = None, None, "Botty", True
    gone, _ = await make_user(session, tenant.organization)
    gone.deleted_at = utcnow()
    await session.flush()
    users = (
        await session.scalars(
            select(User)
            .where(User.organization_id == tenant.org_id, User.deleted_at.is_(None))
            .order_by(User.created_at.desc(), User.id.desc())
        )
    ).all()
    assert {user.id for user in users} == {tenant.user.id, odd.id, bot.id}
    url = f"/api/v5/orgs/{tenant.org_id}/users"
    await _assert_pages(client, tenant, url, UserEmbed, [UserEmbed.of(user) for user in users])
