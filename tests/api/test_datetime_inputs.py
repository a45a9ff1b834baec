"""Issue 24 C: every datetime the API reads is bounded (years 1970..9998 in UTC): a value outside
is a 400 naming the field, never an overflow's 500.

The inputs are found by walking the live OpenAPI document (query parameters and JSON bodies,
nested objects included), so a datetime field added later is tried too; each is sent the
extremes (the far ends of Python's datetimes with the widest offsets, year 10000, a naive
year 9999, before the epoch) on a real resource of `populate()`'s world.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.schemas import MAX_INPUT_YEAR, MIN_INPUT_YEAR, bounded_utc
from apps_api.main import create_app
from apps_api.settings import Settings, get_settings
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.factories import make_tenant
from tests.fixtures.installflow import PASSWORD, unique_email
from tests.fixtures.world import World, populate

OUT_OF_RANGE = [
    "9999-12-31T23:59:59-14:00",  # year 10000 in UTC: astimezone overflows
    "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59",  # naive: UTC, so year 9999
    "10000-01-01T00:00:00Z",  # no datetime at all
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
]
# The ends of the range, also with the widest offsets: never a 500 (the service's own rules,
# such as "in the future" or the log's retention, may still refuse them).
IN_RANGE = [
    "1970-01-01T00:00:00Z",
    "9998-12-31T23:59:59Z",
    "9998-12-31T09:59:59-14:00",
    "2030-01-01T00:00:00",
]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _branches(document: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(document, schema)
    return [_resolve(document, branch) for branch in schema.get("anyOf", schema.get("oneOf", [schema]))]


def _is_datetime(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    return any(branch.get("format") == "date-time" for branch in _branches(document, schema))


def _body_fields(
    document: dict[str, Any], schema: dict[str, Any], prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Paths of the datetime properties of a body schema (into nested objects)."""
    found: list[tuple[str, ...]] = []
    for branch in _branches(document, schema):
        for name, prop in branch.get("properties", {}).items():
            if _is_datetime(document, prop):
                found.append((*prefix, name))
            else:
                found.extend(_body_fields(document, prop, (*prefix, name)))
    return found


def _datetime_inputs() -> list[tuple[str, str, str, tuple[str, ...], dict[str, Any]]]:
    """(method, path, where, field path, example body) of every datetime input of the API."""
    document = create_app(Settings(database_url="postgresql://unused/unused", redis_url=None)).openapi()
    inputs = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if _is_datetime(document, parameter["schema"]):
                    inputs.append((method, path, parameter["in"], (parameter["name"],), {}))
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            body_schema = _resolve(document, content["schema"])
            example = (body_schema.get("examples") or [{}])[0]
            for field in _body_fields(document, content["schema"]):
                inputs.append((method, path, "body", field, example))
    return inputs


INPUTS = _datetime_inputs()


def _input_id(item: tuple[str, str, str, tuple[str, ...], dict[str, Any]]) -> str:
    method, path, where, field, _ = item
    return f"{method.upper()} {path.rsplit('/', 1)[-1]} {where}.{'.'.join(field)}"


def test_the_walk_finds_the_known_datetime_inputs() -> None:
    found = {(path.rsplit("/", 1)[-1], where, ".".join(field)) for _, path, where, field, _ in INPUTS}
    assert {
        ("app_user_tokens", "body", "expires_at"),
        ("recover", "body", "since"),
        ("webhook_log_entries", "query", "created_at_gte"),
        ("webhook_log_entries", "query", "created_at_lte"),
        ("organizations", "body", "subscription_ends_at"),
        ("tokens", "body", "expires_at"),
    } <= found


@pytest.fixture
async def world(session: AsyncSession) -> World:
    owner = await make_tenant(
        session,
        name="Datetimes",
        features=["apps", "app_provider"],
        email=unique_email("datetimes"),
        password=PASSWORD,
    )
    return await populate(session, owner, tag="datetimes")


async def _send(
    client: httpx.AsyncClient,
    world: World,
    item: tuple[str, str, str, tuple[str, ...], dict[str, Any]],
    value: str,
) -> httpx.Response:
    method, path, where, field, example = item
    ids: dict[str, uuid.UUID | str] = {
        # The operator API names organizations and users by `id:<uuid>` (or an external id).
        "organization": f"id:{world.owner.org_id}",
        "user": f"id:{world.owner.user.id}",
        "organization_id": world.owner.org_id,
        "installer_organization_id": world.owner.org_id,
        "app_id": world.app.id,
        "installation_id": world.installation_id,
        "webhook_id": world.webhook_id,
        "entry_id": world.entry_id,
        "share_id": world.share_id,
    }
    try:
        url = path.format(**ids)
    except KeyError as missing:
        pytest.fail(f"{path}: give the test a real resource for {missing}")
    params: dict[str, str] = {}
    body: Any = None
    if where == "body":
        body = copy.deepcopy(example)
        target = body
        for part in field[:-1]:
            target = target.setdefault(part, {})
        target[field[-1]] = value
    elif where == "query":
        params[field[0]] = value
    else:
        pytest.fail(f"a datetime in {where}: teach the test to send it")
    # The operator API takes a service key, everything else the organization's own user.
    headers = (
        {"Authorization": f"Bearer {get_settings().ingest_service_key}"}
        if path.startswith("/internal/")
        else world.owner.headers
    )
    return await client.request(method, url, params=params, json=body, headers=headers)


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("item", INPUTS, ids=_input_id)
async def test_an_out_of_range_datetime_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    world: World,
    item: tuple[str, str, str, tuple[str, ...], dict[str, Any]],
    value: str,
) -> None:
    response = await _send(client, world, item, value)
    assert response.status_code == 400, response.text
    _, _, where, field, _ = item
    key = ".".join(field) if where == "body" else ".".join((where, *field))
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert list(body["errors"]) == [key], body


@pytest.mark.parametrize("value", IN_RANGE)
@pytest.mark.parametrize("item", INPUTS, ids=_input_id)
async def test_the_ends_of_the_range_are_never_a_server_error(
    client: httpx.AsyncClient,
    world: World,
    item: tuple[str, str, str, tuple[str, ...], dict[str, Any]],
    value: str,
) -> None:
    response = await _send(client, world, item, value)
    assert response.status_code < 500, response.text
    if response.status_code == 400:  # only the service's own rules (future, retention)
        assert "Must be between" not in response.text


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59"]
)
async def test_the_consoles_datetime_inputs_are_bounded_too(
    client: httpx.AsyncClient, world: World, value: str
) -> None:
    """The console's forms of the same inputs: the deliveries filters, minting a token, recover."""
    await sign_in(client, world.owner.user.email)
    app = f"/console/apps/{world.app.id}"
    for name in ("since", "until"):
        page = await client.get(f"{app}/deliveries", params={name: value})
        assert page.status_code == 400, (name, page.text)
        assert "Enter a date and time" in page.text
    token = await csrf(client)
    minted = await client.post(
        f"{app}/installations/{world.installation_id}/tokens", data={"csrf_token": token, "expires_at": value}
    )
    assert minted.status_code == 400, minted.text
    recovered = await client.post(
        f"{app}/webhooks/{world.webhook_id}/recover", data={"csrf_token": token, "since": value}
    )
    assert recovered.status_code == 400, recovered.text
    assert "Must be between" in recovered.text


_EPOCH_ORDINAL = datetime(MIN_INPUT_YEAR, 1, 1).toordinal()
_END_ORDINAL = datetime(MAX_INPUT_YEAR + 1, 1, 1).toordinal()


@given(
    moment=st.datetimes(min_value=datetime.min, max_value=datetime.max),
    offset_minutes=st.none() | st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1),
)
def test_bounded_utc_keeps_every_instant_in_range_and_refuses_the_others(
    moment: datetime, offset_minutes: int | None
) -> None:
    offset = timedelta(minutes=offset_minutes or 0)
    value = moment if offset_minutes is None else moment.replace(tzinfo=timezone(offset))
    # The instant in seconds from day 1 of year 1 (UTC), without datetime arithmetic (it overflows).
    seconds = (moment.toordinal() * 86400 + moment.hour * 3600 + moment.minute * 60 + moment.second) - int(
        offset.total_seconds()
    )
    in_range = _EPOCH_ORDINAL * 86400 <= seconds < _END_ORDINAL * 86400
    try:
        utc = bounded_utc(value)
    except ValueError as error:
        assert not in_range
        assert "Must be between" in str(error)
        return
    assert in_range
    assert utc.tzinfo is UTC and utc == value.replace(tzinfo=value.tzinfo or UTC)
    # What the services do with it: a year either side does not overflow.
    assert utc + timedelta(days=366) > utc - timedelta(days=366)
