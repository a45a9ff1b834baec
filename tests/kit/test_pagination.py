"""Every edge of the giosg paginated collection over the keyset cursor."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.db import SessionDep
from apps_api.kit.pagination import PageParamsDep, _Cursor, decode_cursor, encode_cursor, paginate
from apps_api.models import App, User, WebhookChannel
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant, make_app, make_user, minutes_ago

URL = "/api/v5/public_apps"


async def _public_apps(
    session: AsyncSession, tenant: Tenant, count: int, *, same_time: bool = False
) -> list[App]:
    """`count` public apps; returned newest first (the default ordering)."""
    moment = minutes_ago(30)
    apps = []
    for index in range(count):
        created: datetime = moment if same_time else minutes_ago(count - index)
        apps.append(
            await make_app(
                session,
                tenant.organization,
                name=f"App {index}",
                is_available_to_anyone=True,
                is_approved=True,
                created_at=created,
            )
        )
    if same_time:
        return sorted(apps, key=lambda app: app.id, reverse=True)
    return list(reversed(apps))


async def _walk(
    client: httpx.AsyncClient, tenant: Tenant, url: str
) -> tuple[list[str], list[dict[str, object]]]:
    ids: list[str] = []
    pages = []
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url, headers=tenant.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        ids.extend(item["id"] for item in body["results"])
        next_url = body["next"]
    return ids, pages


async def test_empty_collection(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(URL, headers=tenant.headers)
    assert response.json() == {"next": None, "previous": None, "results": []}


async def test_exactly_one_page_has_no_links(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    apps = await _public_apps(session, tenant, 3)
    response = await client.get(f"{URL}?page_size=3", headers=tenant.headers)
    body = response.json()
    assert [item["id"] for item in body["results"]] == [str(app.id) for app in apps]
    assert body["next"] is None and body["previous"] is None


async def test_default_page_size_is_25(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    await _public_apps(session, tenant, 26)
    body = (await client.get(URL, headers=tenant.headers)).json()
    assert len(body["results"]) == 25
    assert body["next"] is not None


async def test_walk_forward_to_the_last_page_and_back(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    apps = await _public_apps(session, tenant, 7)
    ids, pages = await _walk(client, tenant, f"{URL}?page_size=3")
    assert ids == [str(app.id) for app in apps]
    assert [len(page["results"]) for page in pages] == [3, 3, 1]  # type: ignore[arg-type]
    assert pages[0]["previous"] is None
    last = pages[-1]
    assert last["next"] is None and last["previous"] is not None
    assert str(last["previous"]).startswith("http://testserver/api/v5/public_apps?")
    # Walking back from the last page returns the middle page, then the first.
    back = (await client.get(str(last["previous"]), headers=tenant.headers)).json()
    assert back["results"] == pages[1]["results"]
    first = (await client.get(str(back["previous"]), headers=tenant.headers)).json()
    assert first["results"] == pages[0]["results"]
    assert first["previous"] is None
    assert first["next"] is not None


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_equal_timestamps_are_ordered_by_id_without_gaps_or_repeats(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    apps = await _public_apps(session, tenant, 9, same_time=True)
    expected = [str(app.id) for app in apps]
    if ordering == "created_at":
        expected.reverse()
    ids, _ = await _walk(client, tenant, f"{URL}?page_size=4&ordering={ordering}")
    assert ids == expected


async def test_ascending_ordering(client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant) -> None:
    apps = await _public_apps(session, tenant, 5)
    ids, _ = await _walk(client, tenant, f"{URL}?page_size=2&ordering=created_at")
    assert ids == [str(app.id) for app in reversed(apps)]


async def test_rows_inserted_between_pages_do_not_shift_the_walk(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    apps = await _public_apps(session, tenant, 4)
    first = (await client.get(f"{URL}?page_size=2", headers=tenant.headers)).json()
    await make_app(session, tenant.organization, name="Newest", is_available_to_anyone=True, is_approved=True)
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    assert [item["id"] for item in first["results"] + second["results"]] == [str(app.id) for app in apps]


@pytest.mark.parametrize("page_size", ["0", "101", "-1", "abc"])
async def test_page_size_out_of_range_is_400(
    client: httpx.AsyncClient, tenant: Tenant, page_size: str
) -> None:
    response = await client.get(f"{URL}?page_size={page_size}", headers=tenant.headers)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["query.page_size"]


async def test_page_size_bounds_are_accepted(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for page_size in (1, 100):
        response = await client.get(f"{URL}?page_size={page_size}", headers=tenant.headers)
        assert response.status_code == 200


async def test_unknown_ordering_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"{URL}?ordering=name", headers=tenant.headers)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["query.ordering"]


async def test_tampered_cursor_is_400(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    await _public_apps(session, tenant, 3)
    next_url = (await client.get(f"{URL}?page_size=1", headers=tenant.headers)).json()["next"]
    cursor = httpx.URL(next_url).params["cursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for bad in (flipped, "garbage", "!!!", cursor[:10]):
        response = await client.get(URL, params={"cursor": bad, "page_size": 1}, headers=tenant.headers)
        assert response.status_code == 400, bad
        assert response.json()["errors"] == {"cursor": ["The cursor is invalid or was tampered with."]}


def _signed_cursor(cursor: str, key: bytes) -> str:
    """The cursor's payload under a signature made with `key` (the cursor format of kit/pagination.py)."""
    payload = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))[16:]
    signature = hmac.new(key, b"cursor:" + payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(signature + payload).rstrip(b"=").decode()


async def test_well_formed_cursor_signed_with_another_key_is_400(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, settings: Settings
) -> None:
    # The tampering test's inputs fail earlier (length, base64, JSON); this one only fails the HMAC.
    await _public_apps(session, tenant, 3)
    next_url = (await client.get(f"{URL}?page_size=1", headers=tenant.headers)).json()["next"]
    cursor = httpx.URL(next_url).params["cursor"]
    resigned = _signed_cursor(cursor, settings.secret_key.encode())
    assert resigned == cursor  # the forgery below differs from a genuine cursor only in its key
    forged = _signed_cursor(cursor, b"not the service's secret key")
    response = await client.get(URL, params={"cursor": forged, "page_size": 1}, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["errors"] == {"cursor": ["The cursor is invalid or was tampered with."]}


async def test_a_cursor_that_is_not_ascii_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    # The base64 decoder refuses non-ASCII text with a ValueError, not a binascii.Error.
    response = await client.get(URL, params={"cursor": "curs\u00f6r"}, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["errors"] == {"cursor": ["The cursor is invalid or was tampered with."]}


def _signed_payload(payload: bytes, key: bytes) -> str:
    """A cursor carrying `payload` under a genuine signature (the format of kit/pagination.py)."""
    signature = hmac.new(key, b"cursor:" + payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(signature + payload).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",  # ValueError (JSONDecodeError)
        b"\xff\xfe",  # ValueError (UnicodeDecodeError)
        b'["2026-01-01T12:00:00+00:00","n","-created_at"]',  # ValueError: three values, not four
        b'["yesterday","7b4ba0a4-5d80-4a50-9d8b-2c0e4f5f0b6e","n","-created_at"]',  # ValueError
        b'["2026-01-01T12:00:00+00:00","not-a-uuid","n","-created_at"]',  # ValueError
        b"null",  # TypeError: nothing to unpack
        b"12",  # TypeError
        b'[1767268800,"7b4ba0a4-5d80-4a50-9d8b-2c0e4f5f0b6e","n","-created_at"]',  # TypeError
        b'["2026-01-01T12:00:00+00:00",7,"n","-created_at"]',  # an id that is a number
        b'["2026-01-01T12:00:00+00:00",["7b4ba0a4-5d80-4a50-9d8b-2c0e4f5f0b6e"],"n","-created_at"]',
        b'["2026-01-01T12:00:00+00:00","7b4ba0a4-5d80-4a50-9d8b-2c0e4f5f0b6e",1,"-created_at"]',
        b'["2026-01-01T12:00:00+00:00","7b4ba0a4-5d80-4a50-9d8b-2c0e4f5f0b6e","n",["-created_at"]]',
        b'["2026-01-01T12:00:00","7b4ba0a4-5d80-4a50-9d8b-2c0e4f5f0b6e","n","-created_at"]',  # naive
    ],
)
async def test_a_signed_cursor_that_is_not_a_cursor_is_400(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, payload: bytes
) -> None:
    """A payload under a good signature that does not read as a cursor is refused, never a 500."""
    cursor = _signed_payload(payload, settings.secret_key.encode())
    response = await client.get(URL, params={"cursor": cursor}, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == {"cursor": ["The cursor is invalid or was tampered with."]}


@pytest.mark.parametrize(
    ("made_for", "used_with"), [("-created_at", "created_at"), ("created_at", "-created_at")]
)
async def test_cursor_of_another_ordering_is_400(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, made_for: str, used_with: str
) -> None:
    await _public_apps(session, tenant, 3)
    first = await client.get(URL, params={"page_size": 1, "ordering": made_for}, headers=tenant.headers)
    cursor = httpx.URL(first.json()["next"]).params["cursor"]
    response = await client.get(URL, params={"cursor": cursor, "ordering": used_with}, headers=tenant.headers)
    assert response.status_code == 400
    assert "ordering" in response.json()["errors"]["cursor"][0]


async def test_links_keep_other_query_parameters(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    await _public_apps(session, tenant, 3)
    next_url = (await client.get(f"{URL}?page_size=1&ordering=created_at", headers=tenant.headers)).json()[
        "next"
    ]
    params = httpx.URL(next_url).params
    assert params["page_size"] == "1" and params["ordering"] == "created_at" and params["cursor"]


@pytest.fixture
def orm_users_app(app: Any) -> Any:
    """A route of the ORM paginator (`paginate`: the console's lists; the API's are compiled)."""
    router = APIRouter()

    @router.get("/test/orgs/{organization_id}/orm_users")
    async def orm_users(
        request: Request, session: SessionDep, organization_id: uuid.UUID, params: PageParamsDep
    ) -> dict[str, Any]:
        rows, next_url, previous_url = await paginate(
            session,
            select(User).where(User.organization_id == organization_id),
            created_at=User.created_at,
            id_=User.id,
            params=params,
            request=request,
        )
        return {
            "next": next_url,
            "previous": previous_url,
            "results": [{"id": str(row[0].id)} for row in rows],
        }

    @router.get("/test/orgs/{organization_id}/orm_users_and_emails")
    async def orm_users_and_emails(
        request: Request, session: SessionDep, organization_id: uuid.UUID, params: PageParamsDep
    ) -> dict[str, Any]:
        # The entity first, then another column: `paginate` reads the keyset from the entity.
        rows, next_url, previous_url = await paginate(
            session,
            select(User, User.email).where(User.organization_id == organization_id),
            created_at=User.created_at,
            id_=User.id,
            params=params,
            request=request,
        )
        return {
            "next": next_url,
            "previous": previous_url,
            "results": [{"id": str(user.id), "email": email} for user, email in rows],
        }

    app.include_router(router)
    return app


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_the_orm_pages_walk_both_ways_without_gaps_or_repeats(
    orm_users_app: Any, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    """The ORM path (`paginate`), with equal timestamps so the id decides."""
    for _ in range(6):
        await make_user(session, tenant.organization)
    await session.execute(
        update(User).where(User.organization_id == tenant.org_id).values(created_at=minutes_ago(5))
    )
    users = f"/test/orgs/{tenant.org_id}/orm_users"
    everyone = (await client.get(users, params={"page_size": 100}, headers=tenant.headers)).json()["results"]
    assert len(everyone) == 7
    ids, pages = await _walk(client, tenant, f"{users}?page_size=3&ordering={ordering}")
    assert len(ids) == len(set(ids)) == 7
    assert ids == sorted(ids, reverse=ordering == "-created_at")
    back = (await client.get(str(pages[-1]["previous"]), headers=tenant.headers)).json()
    assert back["results"] == pages[1]["results"]
    # One row a page: back from the second page to the first, which links forward only.
    second = (await client.get(f"{users}?page_size=1&ordering={ordering}", headers=tenant.headers)).json()
    second = (await client.get(second["next"], headers=tenant.headers)).json()
    first = await client.get(second["previous"], headers=tenant.headers)
    assert first.status_code == 200, first.text
    assert [user["id"] for user in first.json()["results"]] == ids[:1]
    assert first.json()["previous"] is None and first.json()["next"] is not None


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_the_orm_pages_order_by_time_before_id(
    orm_users_app: Any, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    """Distinct timestamps in the opposite order of the ids: the time decides, then the id."""
    made = [await make_user(session, tenant.organization) for _ in range(4)]
    by_id = sorted([tenant.user, *(user for user, _ in made)], key=lambda user: user.id)
    for index, user in enumerate(by_id):  # the largest id is the oldest
        await session.execute(
            update(User).where(User.id == user.id).values(created_at=minutes_ago(10 - index))
        )
    oldest_first = [str(user.id) for user in by_id]
    expected = oldest_first if ordering == "created_at" else list(reversed(oldest_first))
    ids, pages = await _walk(
        client, tenant, f"/test/orgs/{tenant.org_id}/orm_users?page_size=2&ordering={ordering}"
    )
    assert ids == expected
    assert pages[0]["previous"] is None and all(page["previous"] for page in pages[1:])
    back = (await client.get(str(pages[-1]["previous"]), headers=tenant.headers)).json()
    assert back["results"] == pages[-2]["results"]


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_the_orm_pages_of_an_entity_and_more_columns_walk_both_ways(
    orm_users_app: Any, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    """A statement may select more after its entity: the keyset is the entity's, not the last column's."""
    for _ in range(4):
        await make_user(session, tenant.organization)
    users = f"/test/orgs/{tenant.org_id}/orm_users_and_emails"
    whole = await client.get(users, params={"page_size": 100, "ordering": ordering}, headers=tenant.headers)
    assert whole.status_code == 200, whole.text
    everyone = [user["id"] for user in whole.json()["results"]]
    assert len(everyone) == 5
    ids, pages = await _walk(client, tenant, f"{users}?page_size=2&ordering={ordering}")
    assert ids == everyone
    back = (await client.get(str(pages[-1]["previous"]), headers=tenant.headers)).json()
    assert back["results"] == pages[1]["results"]


async def _users_oldest_first(session: AsyncSession, tenant: Tenant) -> list[User]:
    """Six users of the tenant at distinct times, oldest first; the tenant's own user third."""
    made = [user for user, _ in [await make_user(session, tenant.organization) for _ in range(5)]]
    users = [*made[:2], tenant.user, *made[2:]]
    for index, user in enumerate(users):
        await session.execute(
            update(User).where(User.id == user.id).values(created_at=minutes_ago(10 - index))
        )
    return users


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_an_orm_page_links_back_only_while_rows_lie_before_its_first(
    orm_users_app: Any,
    client: httpx.AsyncClient,
    session: AsyncSession,
    tenant: Tenant,
    other_tenant: Tenant,
    ordering: str,
) -> None:
    """The `previous` probe of a two-row page starts at its first row: once the rows before it
    leave the list, the page links back to nothing (its own first row is no earlier row)."""
    users = await _users_oldest_first(session, tenant)
    if ordering == "-created_at":
        users.reverse()
    url = f"/test/orgs/{tenant.org_id}/orm_users?page_size=2&ordering={ordering}"
    first = (await client.get(url, headers=tenant.headers)).json()
    assert [user["id"] for user in first["results"]] == [str(user.id) for user in users[:2]]
    gone = [user.id for user in users[:2]]
    await session.execute(update(User).where(User.id.in_(gone)).values(organization_id=other_tenant.org_id))
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    assert [user["id"] for user in second["results"]] == [str(user.id) for user in users[2:4]]
    assert second["previous"] is None and second["next"] is not None


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_an_orm_page_read_backwards_links_on_only_while_rows_lie_past_its_last(
    orm_users_app: Any,
    client: httpx.AsyncClient,
    session: AsyncSession,
    tenant: Tenant,
    other_tenant: Tenant,
    ordering: str,
) -> None:
    """The `next` probe of a two-row page reached by a `previous` link starts at its last row:
    once the rows after it leave the list, the page links on to nothing."""
    users = await _users_oldest_first(session, tenant)
    if ordering == "-created_at":
        users.reverse()
    url = f"/test/orgs/{tenant.org_id}/orm_users?page_size=2&ordering={ordering}"
    first = (await client.get(url, headers=tenant.headers)).json()
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    third = (await client.get(second["next"], headers=tenant.headers)).json()
    assert [user["id"] for user in third["results"]] == [str(user.id) for user in users[4:]]
    gone = [user.id for user in users[4:]]
    await session.execute(update(User).where(User.id.in_(gone)).values(organization_id=other_tenant.org_id))
    back = (await client.get(third["previous"], headers=tenant.headers)).json()
    assert [user["id"] for user in back["results"]] == [str(user.id) for user in users[2:4]]
    assert back["next"] is None and back["previous"] is not None


async def test_links_use_the_public_base_url(
    app: Any, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"public_base_url": "https://api.example.com/"})
    await _public_apps(session, tenant, 3)
    page = (await client.get(f"{URL}?page_size=1&ordering=created_at", headers=tenant.headers)).json()
    next_url = httpx.URL(page["next"])
    assert str(next_url).startswith("https://api.example.com/api/v5/public_apps?")
    assert next_url.params["page_size"] == "1" and next_url.params["ordering"] == "created_at"
    following = await client.get(f"{URL}?{next_url.query.decode()}", headers=tenant.headers)
    assert following.status_code == 200 and following.json()["previous"].startswith(
        "https://api.example.com/"
    )


def test_cursors_of_every_length_decode() -> None:
    """Cursors are unpadded base64: every length (mod 4) gets its padding back."""
    key = b"k" * 32
    residues = set()
    for microseconds in (0, 1):
        moment = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(microseconds=microseconds)
        for ordering in ("created_at", "-created_at"):
            cursor = _Cursor(moment, uuid.uuid4(), False, ordering)  # type: ignore[arg-type]
            raw = encode_cursor(cursor, key)
            residues.add(len(raw) % 4)
            assert decode_cursor(raw, ordering, key) == cursor  # type: ignore[arg-type]
    assert residues == {0, 2, 3}


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_a_page_links_back_exactly_while_earlier_rows_exist(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    apps = await _public_apps(session, tenant, 3)
    if ordering == "created_at":
        apps.reverse()
    first = (await client.get(f"{URL}?page_size=1&ordering={ordering}", headers=tenant.headers)).json()
    assert [app["id"] for app in first["results"]] == [str(apps[0].id)]
    # While the first page's one row is there, the second page links back to it.
    assert (await client.get(first["next"], headers=tenant.headers)).json()["previous"] is not None
    await session.delete(apps[0])
    await session.flush()
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    assert [app["id"] for app in second["results"]] == [str(apps[1].id)]
    assert second["previous"] is None and second["next"] is not None


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_a_compiled_page_links_back_while_earlier_rows_exist_without_the_cursors_own(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    """The `previous` probe looks for any row on the cursor's side, not just the row the cursor
    was made from: with that row gone, an earlier one still earns the link."""
    apps = await _public_apps(session, tenant, 3)
    if ordering == "created_at":
        apps.reverse()
    first = (await client.get(f"{URL}?page_size=1&ordering={ordering}", headers=tenant.headers)).json()
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    await session.delete(apps[1])  # the second page's row: the third page's cursor was made from it
    await session.flush()
    third = (await client.get(second["next"], headers=tenant.headers)).json()
    assert [app["id"] for app in third["results"]] == [str(apps[2].id)]
    assert third["previous"] is not None and third["next"] is None


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
async def test_a_compiled_page_read_backwards_links_on_while_later_rows_exist_without_the_cursors_own(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, ordering: str
) -> None:
    """A `previous` link's page links `next` while any row lies past its cursor, even once the row
    the cursor was made from is gone, and not once nothing does."""
    apps = await _public_apps(session, tenant, 3)
    if ordering == "created_at":
        apps.reverse()
    first = (await client.get(f"{URL}?page_size=1&ordering={ordering}", headers=tenant.headers)).json()
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    await session.delete(apps[1])  # the second page's row: its `previous` cursor was made from it
    await session.flush()
    back = (await client.get(second["previous"], headers=tenant.headers)).json()
    assert [app["id"] for app in back["results"]] == [str(apps[0].id)]
    assert back["next"] is not None and back["previous"] is None
    await session.delete(apps[2])
    await session.flush()
    back = (await client.get(second["previous"], headers=tenant.headers)).json()
    assert [app["id"] for app in back["results"]] == [str(apps[0].id)]
    assert back["next"] is None and back["previous"] is None


@pytest.mark.parametrize("page_size", [1, 2])
@pytest.mark.parametrize("ordering", ["-created_at", "created_at"])
async def test_the_in_memory_pages_walk_both_ways_without_gaps_or_repeats(
    client: httpx.AsyncClient, tenant: Tenant, ordering: str, page_size: int
) -> None:
    """`paginate_items` (the channel catalogue) links pages as `paginate` does, both ways (pages of
    one item too: the backwards probe starts from the page's last item, which is its first)."""
    url = "/api/v5/webhook_channels"
    whole = await client.get(url, params={"page_size": 100, "ordering": ordering}, headers=tenant.headers)
    assert whole.status_code == 200, whole.text
    everything = [item["pattern"] for item in whole.json()["results"]]
    assert len(everything) >= 5 and whole.json()["next"] is None
    pages: list[list[str]] = []
    page = (
        await client.get(url, params={"page_size": page_size, "ordering": ordering}, headers=tenant.headers)
    ).json()
    assert page["previous"] is None
    while True:
        pages.append([item["pattern"] for item in page["results"]])
        assert len(pages[-1]) == page_size or page["next"] is None
        if page["next"] is None:
            break
        page = (await client.get(page["next"], headers=tenant.headers)).json()
    assert [pattern for chunk in pages for pattern in chunk] == everything
    # Back from the last page, page by page, to the first (which has no `previous`).
    back = [pages[-1]]
    while page["previous"] is not None:
        page = (await client.get(page["previous"], headers=tenant.headers)).json()
        back.append([item["pattern"] for item in page["results"]])
    assert back[::-1] == pages
    assert page["next"] is not None or len(pages) == 1


async def test_the_in_memory_links_follow_what_is_left_on_each_side(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, settings: Settings
) -> None:
    """A page's other-side link looks past the page's own edge: once the registered families a
    walk started with are gone, the page beside them links to nothing there."""
    service = {"Authorization": f"Bearer {settings.ingest_service_key}"}
    for name in ("chats", "visitors"):
        body = {
            "pattern": f"/api/v5/orgs/{{organization_id}}/{name}",
            "scope": "reports",
            "resource_schema": {},
        }
        registered = await client.post("/internal/v1/webhook_channels", json=body, headers=service)
        assert registered.status_code in (200, 201), registered.text
    url = "/api/v5/webhook_channels"

    async def walk_to_the_registered(ordering: str) -> dict[str, Any]:
        page = (
            await client.get(url, params={"page_size": 2, "ordering": ordering}, headers=tenant.headers)
        ).json()
        while not any(item["source"] == "operator" for item in page["results"]):
            page = (await client.get(page["next"], headers=tenant.headers)).json()
        return page

    # Newest first: the registered families are the first page; without them, the second page
    # has nothing before it.
    first = await walk_to_the_registered("-created_at")
    await session.execute(delete(WebhookChannel))
    second = (await client.get(first["next"], headers=tenant.headers)).json()
    assert second["results"] and second["previous"] is None
    # Oldest first: they are the last page; back from it without them, nothing lies after.
    for name in ("chats", "visitors"):
        body = {
            "pattern": f"/api/v5/orgs/{{organization_id}}/{name}",
            "scope": "reports",
            "resource_schema": {},
        }
        assert (
            await client.post("/internal/v1/webhook_channels", json=body, headers=service)
        ).status_code < 300
    last = await walk_to_the_registered("created_at")
    await session.execute(delete(WebhookChannel))
    before = (await client.get(last["previous"], headers=tenant.headers)).json()
    assert before["results"] and before["next"] is None
