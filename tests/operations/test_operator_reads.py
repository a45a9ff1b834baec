"""The operator API's GETs read rows on a connection of their own (operator/queries.py).

Each view must be exactly what the schema's `of` makes of the ORM object (the writes' view,
and what the GETs answered before), the refusals the same, the pages the same walk; and a GET
opens no session at all.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import digest, new_token_key
from apps_api.models import ApiToken, Asset, Organization, Partnership, User
from apps_api.models.base import utcnow
from apps_api.operator import schemas
from apps_api.settings import Settings

OPERATOR = "/internal/v1/organizations"


def _headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.accepted_service_keys[0]}"}


def _items(view: dict[str, Any]) -> list[tuple[str, Any]]:
    # Order matters too: the JSON must be the same document, not just equal dicts.
    return list(view.items())


async def _world(session: AsyncSession) -> dict[str, Any]:
    now = utcnow().replace(microsecond=0)  # isoformat drops zero microseconds: both paths must agree
    organization = Organization(
        name="Zoë \u2028 Co",
        features=["app_provider", "apps"],
        subscription_active=True,
        subscription_expires_at=now - timedelta(days=1),  # lapsed: has_active_subscription false
        external_id=f"crm-{uuid.uuid4().hex[:8]}",
        created_at=now,
    )
    partner = Organization(name="Partner", features=[], subscription_active=False)
    session.add_all([organization, partner])
    await session.flush()
    low, high = sorted((organization.id, partner.id))
    session.add(Partnership(organization_a_id=low, organization_b_id=high))
    person = User(
        organization_id=organization.id,
        email=f"{uuid.uuid4().hex}@example.com",
        first_name='"Ada" \\',
        last_name=None,
        permissions=["users", "settings"],
        password_hash="argon2-not-a-real-hash",
        external_id="person-1",
        created_at=now,
    )
    bot = User(organization_id=organization.id, is_bot=True, permissions=[])
    gone = User(organization_id=organization.id, external_id="gone", deleted_at=now)
    stranger = User(organization_id=partner.id, external_id="person-1")
    session.add_all([person, bot, gone, stranger])
    await session.flush()
    tokens = [
        ApiToken(
            user_id=person.id,
            key_digest=digest(new_token_key()),
            key_prefix=f"k{index}",
            expires_at=now + timedelta(days=index) if index else None,
            revoked_at=now if index == 2 else None,
        )
        for index in range(3)
    ]
    asset = Asset(
        organization_id=organization.id,
        url="https://cdn.example.com/ikon-ä.png",
        content_type="image/png",
        size=2**40,
        width=64,
    )
    session.add_all([*tokens, asset, Asset(organization_id=partner.id, url="https://cdn.example.com/p.png")])
    await session.flush()
    return {
        "organization": organization,
        "partner": partner,
        "person": person,
        "bot": bot,
        "gone": gone,
        "stranger": stranger,
        "tokens": tokens,
        "asset": asset,
    }


async def test_every_get_answers_the_models_view_of_the_object(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    world, headers = await _world(session), _headers(settings)
    organization, partner, person, bot = (
        world[name] for name in ("organization", "partner", "person", "bot")
    )
    org_url = f"{OPERATOR}/{organization.external_id}"

    def organization_view(value: Organization) -> list[tuple[str, Any]]:
        return _items(schemas.Organization.of(value).model_dump(mode="json"))

    def user_view(value: User) -> list[tuple[str, Any]]:
        return _items(schemas.User.of(value).model_dump(mode="json"))

    for url in (org_url, f"{OPERATOR}/id:{organization.id}"):
        got = await client.get(url, headers=headers)
        assert got.status_code == 200, got.text
        assert _items(got.json()) == organization_view(organization)
    assert got.json()["has_active_subscription"] is False and got.json()["features"] == [
        "app_provider",
        "apps",
    ]

    partners = await client.get(f"{org_url}/partners", headers=headers)
    assert [_items(item) for item in partners.json()["results"]] == [organization_view(partner)]
    back = await client.get(f"{OPERATOR}/id:{partner.id}/partners", headers=headers)
    assert [_items(item) for item in back.json()["results"]] == [organization_view(organization)]

    listed = await client.get(OPERATOR, params={"page_size": 100}, headers=headers)
    assert listed.status_code == 200, listed.text
    by_id = {item["id"]: item for item in listed.json()["results"]}
    assert _items(by_id[str(organization.id)]) == organization_view(organization)
    for item in listed.json()["results"]:  # every organization there is, as the model views it
        other = await session.get(Organization, uuid.UUID(item["id"]))
        assert other is not None and _items(item) == organization_view(other)

    for url in (f"{org_url}/users/person-1", f"{org_url}/users/id:{person.id}"):
        got = await client.get(url, headers=headers)
        assert got.status_code == 200, got.text
        assert _items(got.json()) == user_view(person)
    assert got.json()["has_password"] is True and got.json()["permissions"] == ["settings", "users"]
    users = await client.get(f"{org_url}/users", headers=headers)
    assert [_items(item) for item in users.json()["results"]] == [user_view(bot), user_view(person)]

    live = [token for token in world["tokens"] if token.revoked_at is None]
    tokens = await client.get(f"{org_url}/users/person-1/tokens", headers=headers)
    expected = sorted(live, key=lambda token: (token.created_at, token.id), reverse=True)
    assert [_items(item) for item in tokens.json()["results"]] == [
        _items(schemas.Token.model_validate(token, from_attributes=True).model_dump(mode="json"))
        for token in expected
    ]
    assets = await client.get(f"{org_url}/assets", headers=headers)
    assert [_items(item) for item in assets.json()["results"]] == [
        _items(schemas.Asset.model_validate(world["asset"], from_attributes=True).model_dump(mode="json"))
    ]


async def test_refusals_are_the_loaders(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    world, headers = await _world(session), _headers(settings)
    organization, stranger, gone = world["organization"], world["stranger"], world["gone"]
    unknown = uuid.uuid4()
    org_url = f"{OPERATOR}/id:{organization.id}"
    refusals = {
        f"{OPERATOR}/nobody-{unknown}": f"Unknown organization: nobody-{unknown}.",
        f"{OPERATOR}/id:{unknown}": f"Unknown organization: {unknown}.",
        f"{OPERATOR}/id:{str(unknown).upper()}/users": f"Unknown organization: {unknown}.",
        f"{OPERATOR}/id:not-a-uuid/assets": "Not an id: id:not-a-uuid.",
        f"{org_url}/users/id:{stranger.id}": f"Unknown user: id:{stranger.id}.",  # another organization's
        f"{org_url}/users/id:{gone.id}": f"Unknown user: id:{gone.id}.",  # deleted
        f"{org_url}/users/gone/tokens": "Unknown user: gone.",
        f"{org_url}/users/id:x/tokens": "Not an id: id:x.",
    }
    for url, detail in refusals.items():
        refused = await client.get(url, headers=headers)
        assert refused.status_code == 404, (url, refused.text)
        assert refused.json() == {"detail": detail}, url
        if not url.endswith("/tokens"):
            # The write loaders refuse alike (the same words for the same path).
            target = url.removesuffix("/users").removesuffix("/assets")
            patched = await client.patch(target, json={}, headers=headers)
            assert patched.status_code == 404 and patched.json() == {"detail": detail}, url
    assert (await client.get(org_url, headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_pages_walk_both_ways_in_either_order(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    headers = _headers(settings)
    organization = Organization(name="Many users")
    session.add(organization)
    await session.flush()
    start = utcnow()
    # Two pairs share a created_at: the id breaks the tie, as in the keyset.
    moments = [
        start,
        start,
        start + timedelta(seconds=1),
        start + timedelta(seconds=2),
        start + timedelta(seconds=2),
    ]
    users = [User(organization_id=organization.id, created_at=moment) for moment in moments]
    session.add_all(users)
    await session.flush()
    url = f"{OPERATOR}/id:{organization.id}/users"
    for ordering, reverse in (("-created_at", True), ("created_at", False)):
        expected = [
            str(user.id) for user in sorted(users, key=lambda u: (u.created_at, u.id), reverse=reverse)
        ]
        pages: list[list[str]] = []
        page = await client.get(url, params={"page_size": 2, "ordering": ordering}, headers=headers)
        assert page.json()["previous"] is None
        while True:
            assert page.status_code == 200, page.text
            pages.append([item["id"] for item in page.json()["results"]])
            if page.json()["next"] is None:
                break
            page = await client.get(page.json()["next"], headers=headers)
        assert pages == [expected[0:2], expected[2:4], expected[4:]]
        backwards = [pages[-1]]
        while page.json()["previous"] is not None:
            page = await client.get(page.json()["previous"], headers=headers)
            backwards.append([item["id"] for item in page.json()["results"]])
        assert backwards == pages[::-1]
    tampered = await client.get(url, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=headers)
    assert tampered.status_code == 400 and "cursor" in tampered.json()["errors"]


async def test_a_get_opens_no_session_and_one_read_connection(
    app: Any, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    world, headers = await _world(session), _headers(settings)
    organization = world["organization"]
    request_sessions = app.state.request_sessions

    @asynccontextmanager
    async def writes_only(method: str) -> AsyncIterator[AsyncSession]:
        assert method != "GET", "a GET of the operator API opened a session"
        async with request_sessions(method) as request_session:
            yield request_session

    read_connections, opened = app.state.read_connections, []

    @asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        opened.append(1)
        async with read_connections() as db:
            yield db

    app.state.request_sessions, app.state.read_connections = writes_only, counted
    org_url = f"{OPERATOR}/id:{organization.id}"
    for url in (
        OPERATOR,
        org_url,
        f"{org_url}/partners",
        f"{org_url}/assets",
        f"{org_url}/users",
        f"{org_url}/users/person-1",
        f"{org_url}/users/person-1/tokens",
    ):
        opened.clear()
        got = await client.get(url, headers=headers)
        assert got.status_code == 200, (url, got.text)
        assert len(opened) == 1, url  # the loaders and the route share the request's one connection
    # The writes still have theirs.
    renamed = await client.patch(org_url, json={"name": "Renamed"}, headers=headers)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert (await client.get(org_url, headers=headers)).json()["name"] == "Renamed"
