"""giosg paginated collections: `{next, previous, results}` over an opaque, signed keyset cursor."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    bindparam,
    exists,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from starlette.datastructures import MultiDict

from apps_api.kit.deps import app_settings
from apps_api.kit.driver import CompiledStatement, ReadConnection
from apps_api.kit.errors import BadRequest
from apps_api.kit.schemas import Uri, hint
from apps_api.kit.views import json_response

T = TypeVar("T")
Row = TypeVar("Row")
Ordering = Literal["created_at", "-created_at"]
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


class Page(BaseModel, Generic[T]):
    """A page of a collection, newest first unless `ordering` says otherwise."""

    next: Uri | None = Field(description="The URL of the next page; null on the last one.")
    previous: Uri | None = Field(description="The URL of the previous page; null on the first one.")
    results: list[T] = Field(description="The resources of this page.")


@dataclass(frozen=True)
class PageParams:
    cursor: str | None
    page_size: int
    ordering: Ordering


# async: FastAPI runs a plain `def` dependency in a worker thread (a thread hop per request).
async def page_params(
    cursor: Annotated[
        str | None, Query(description="Opaque cursor from a `next` or `previous` link.")
    ] = None,
    page_size: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Results per page (1-100).")
    ] = DEFAULT_PAGE_SIZE,
    ordering: Annotated[
        Ordering,
        # Enum member names for generated clients ("-created_at" is no identifier).
        hint(**{"x-enum-varnames": ["CREATED_AT", "CREATED_AT_DESC"]}),
        Query(description="`-created_at` (newest first) or `created_at`."),
    ] = "-created_at",
) -> PageParams:
    return PageParams(cursor=cursor, page_size=page_size, ordering=ordering)


PageParamsDep = Annotated[PageParams, Depends(page_params)]


@dataclass(frozen=True)
class _Cursor:
    created_at: datetime
    id: uuid.UUID
    backwards: bool
    ordering: Ordering


def _sign(payload: bytes, key: bytes) -> bytes:
    # hmac.digest: the one-shot C path, the same bytes as hmac.new(...).digest() without its object.
    return hmac.digest(key, b"cursor:" + payload, "sha256")[:16]


def encode_cursor(cursor: _Cursor, key: bytes) -> str:
    payload = json.dumps(
        [cursor.created_at.isoformat(), str(cursor.id), "p" if cursor.backwards else "n", cursor.ordering],
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(_sign(payload, key) + payload).rstrip(b"=").decode()


def decode_cursor(raw: str, ordering: Ordering, key: bytes) -> _Cursor:
    invalid = BadRequest(
        "Invalid cursor.", errors={"cursor": ["The cursor is invalid or was tampered with."]}
    )
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    signature, payload = blob[:16], blob[16:]
    if len(signature) != 16 or not hmac.compare_digest(signature, _sign(payload, key)):
        raise invalid
    try:
        created_at, row_id, direction, cursor_ordering = json.loads(payload)
        # Only this service signs cursors, but a key that leaked must still not buy a 500:
        # uuid.UUID of a number is an AttributeError, and a naive time fails in the query.
        if not all(isinstance(value, str) for value in (created_at, row_id, direction, cursor_ordering)):
            raise TypeError
        cursor = _Cursor(
            datetime.fromisoformat(created_at), uuid.UUID(row_id), direction == "p", cursor_ordering
        )
        if cursor.created_at.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError):
        raise invalid from None
    if cursor.ordering != ordering:
        raise BadRequest(
            "Invalid cursor.", errors={"cursor": ["The cursor belongs to a different `ordering`."]}
        )
    return cursor


def _page_url(request: Request, cursor: _Cursor) -> str:
    """The request's URL with `cursor` in its query (replacing any), under the public base URL."""
    settings = app_settings(request)
    base = settings.public_base_url
    value = encode_cursor(cursor, settings.secret_key.encode())
    if base:
        scope = request.scope
        path: str = scope["path"]
        query: str = scope.get("query_string", b"").decode()
        if _PLAIN_PATH.match(path) and "#" not in query:
            # What the branch below gives, without building and re-parsing two URL objects
            # (a tenth of a list's CPU, bench/ANALYSIS.md); tests/kit compares the two.
            return base.rstrip("/") + path + "?" + _with_cursor(query, value)
    url = request.url.include_query_params(cursor=value)
    if base:
        return base.rstrip("/") + url.path + ("?" + url.query if url.query else "")
    return str(url)


# A path that a URL keeps as it is (no character urlsplit would treat or strip).
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/._~-]*\Z")


def _with_cursor(query: str, value: str) -> str:
    """Starlette's `include_query_params(cursor=value)` of a query: every `cursor` out, the new one last."""
    if not query:
        return urlencode([("cursor", value)])
    params = MultiDict(parse_qsl(query, keep_blank_values=True))
    params.update({"cursor": value})
    return urlencode(params.multi_items())


@dataclass(frozen=True)
class _Walk:
    """Where a page starts and which way it reads, from the page parameters."""

    cursor: _Cursor | None
    descending: bool  # the requested order
    backwards: bool  # a `previous` link: read against the requested order, then reverse

    @property
    def reads_descending(self) -> bool:
        return self.descending != self.backwards


def _walk(request: Request, params: PageParams) -> _Walk:
    key = app_settings(request).secret_key.encode()
    cursor = decode_cursor(params.cursor, params.ordering, key) if params.cursor else None
    return _Walk(cursor, params.ordering == "-created_at", cursor is not None and cursor.backwards)


def _page(
    rows: list[Row],
    *,
    walk: _Walk,
    params: PageParams,
    request: Request,
    position: Callable[[Row], tuple[datetime, uuid.UUID]],
    other_side: Callable[[list[Row]], Awaitable[bool]],
) -> Awaitable[tuple[list[Row], str | None, str | None]]:
    """The one paginator: a page read with LIMIT page_size + 1 in `walk` order, trimmed and linked.

    `other_side` tells whether any row lies on the cursor's side of the (non-empty) page.
    """

    async def finish() -> tuple[list[Row], str | None, str | None]:
        more_ahead = len(rows) > params.page_size
        page = rows[: params.page_size]
        if walk.backwards:
            page.reverse()
        if not page:
            return page, None, None
        behind = walk.cursor is not None and await other_side(page)
        has_next, has_previous = (behind, more_ahead) if walk.backwards else (more_ahead, behind)
        next_url = previous_url = None
        if has_next:
            next_url = _page_url(request, _Cursor(*position(page[-1]), False, params.ordering))
        if has_previous:
            previous_url = _page_url(request, _Cursor(*position(page[0]), True, params.ordering))
        return page, next_url, previous_url

    return finish()


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    *,
    created_at: InstrumentedAttribute[datetime],
    id_: InstrumentedAttribute[uuid.UUID],
    params: PageParams,
    request: Request,
    options: Sequence[Any] = (),
) -> tuple[Sequence[Any], str | None, str | None]:
    """Run an ORM `statement` one page at a time; returns (rows, next URL, previous URL).

    The statement selects the entity first (filters applied, no loader options); pagination
    adds the keyset condition on (created_at, id), the order and the limit, so page 400 costs
    what page 1 does. `options` (eager loads) apply to the page query only.
    """
    walk = _walk(request, params)
    key = tuple_(created_at, id_)

    def ahead_of(position: tuple[datetime, uuid.UUID], descending: bool) -> Any:
        value = tuple_(*position)
        return key < value if descending else key > value

    query = statement
    if walk.cursor is not None:
        query = query.where(ahead_of((walk.cursor.created_at, walk.cursor.id), walk.reads_descending))
    descending = walk.reads_descending
    order = (created_at.desc(), id_.desc()) if descending else (created_at.asc(), id_.asc())
    rows = list(
        (await session.execute(query.options(*options).order_by(*order).limit(params.page_size + 1))).all()
    )

    def position(row: Any) -> tuple[datetime, uuid.UUID]:
        return getattr(row[0], created_at.key), getattr(row[0], id_.key)

    async def other_side(page: list[Any]) -> bool:
        # Forwards: anything before the page's first row; backwards: after its last (requested order).
        if walk.backwards:
            beyond = ahead_of(position(page[-1]), walk.descending)
        else:
            beyond = ahead_of(position(page[0]), not walk.descending)
        return await _exists(session, statement.where(beyond))

    return await _page(
        rows, walk=walk, params=params, request=request, position=position, other_side=other_side
    )


async def paginate_items(
    items: Sequence[Row],
    *,
    position: Callable[[Row], tuple[datetime, uuid.UUID]],
    params: PageParams,
    request: Request,
) -> tuple[list[Row], str | None, str | None]:
    """`paginate()` over a short list held in memory (same cursors, order and links)."""
    walk = _walk(request, params)

    def ahead_of(mark: tuple[datetime, uuid.UUID], descending: bool) -> Callable[[Row], bool]:
        return lambda item: position(item) < mark if descending else position(item) > mark

    ordered = sorted(items, key=position, reverse=walk.reads_descending)
    if walk.cursor is not None:
        ahead = ahead_of((walk.cursor.created_at, walk.cursor.id), walk.reads_descending)
        ordered = [item for item in ordered if ahead(item)]

    async def other_side(page: list[Row]) -> bool:
        if walk.backwards:
            beyond = ahead_of(position(page[-1]), walk.descending)
        else:
            beyond = ahead_of(position(page[0]), not walk.descending)
        return any(beyond(item) for item in items)

    return await _page(
        ordered[: params.page_size + 1],
        walk=walk,
        params=params,
        request=request,
        position=position,
        other_side=other_side,
    )


async def _exists(session: AsyncSession, statement: Select[Any]) -> bool:
    return bool(await session.scalar(select(exists(statement.limit(1).subquery()))))


# --- compiled keyset pages (the hot lists) ------------------------------------------------------


@dataclass
class KeysetQuery:
    """A list view's page statements, compiled once per shape and run in one round trip.

    `columns` must include the keyset columns labelled `created_at` and `id`; `conditions`
    (bound parameters only) decide what the caller may read, and the same conditions drive the
    `previous`/`next` probe. A cursor page selects one more column, `_other_side`: an
    uncorrelated EXISTS (evaluated once) telling whether any row lies on the cursor's side, so
    page 400 costs one round trip like page 1 (the ORM path above needs a second query).
    """

    columns: Sequence[ColumnElement[Any]]
    from_: FromClause
    created_at: ColumnElement[datetime]
    id_: ColumnElement[uuid.UUID]
    _compiled: dict[tuple[Hashable, bool, bool], CompiledStatement] = field(default_factory=dict)

    def compiled(
        self, conditions: Sequence[ColumnElement[bool]], shape: Hashable, descending: bool, cursor: bool
    ) -> CompiledStatement:
        key = (shape, descending, cursor)
        statement = self._compiled.get(key)
        if statement is None:
            statement = self._compiled[key] = CompiledStatement(
                self._build(conditions, descending=descending, cursor=cursor)
            )
        return statement

    def _build(
        self, conditions: Sequence[ColumnElement[bool]], *, descending: bool, cursor: bool
    ) -> Select[Any]:
        key = tuple_(self.created_at, self.id_)
        position = tuple_(bindparam("cursor_created_at"), bindparam("cursor_id"))
        ahead = key < position if descending else key > position
        # The other side, spelled as a row comparison (not NOT(ahead)) so that it is an index condition.
        behind = key >= position if descending else key <= position
        columns = list(self.columns)
        where = list(conditions)
        if cursor:
            probe: Select[Any] = (
                select(literal_column("1"))
                .select_from(self.id_.table)
                .where(*conditions, behind)
                .correlate(None)
            )
            columns.append(exists(probe).label("_other_side"))
            where.append(ahead)
        order = (self.created_at.desc(), self.id_.desc()) if descending else (self.created_at, self.id_)
        return (
            select(*columns).select_from(self.from_).where(*where).order_by(*order).limit(bindparam("limit"))
        )


async def keyset_page(
    db: AsyncSession | ReadConnection,
    query: KeysetQuery,
    *,
    conditions: Sequence[ColumnElement[bool]],
    shape: Hashable = None,
    params: PageParams,
    request: Request,
    **values: Any,
) -> tuple[Sequence[Any], str | None, str | None]:
    """`paginate()` for a `KeysetQuery`, through the same paginator: one round trip a page.

    `conditions` are only used the first time a `shape` is seen (they must be the same
    expressions for the same shape); `values` fill their bound parameters.
    """
    walk = _walk(request, params)
    statement = query.compiled(conditions, shape, walk.reads_descending, walk.cursor is not None)
    if walk.cursor is not None:
        values["cursor_created_at"], values["cursor_id"] = walk.cursor.created_at, walk.cursor.id
    rows = list(await statement.fetch(db, limit=params.page_size + 1, **values))

    async def other_side(page: list[Any]) -> bool:
        return bool(page[0]["_other_side"])  # the page query's own EXISTS column

    return await _page(
        rows,
        walk=walk,
        params=params,
        request=request,
        position=lambda row: (row["created_at"], row["id"]),
        other_side=other_side,
    )


async def json_keyset_page(
    db: AsyncSession | ReadConnection,
    query: KeysetQuery,
    view: Callable[[Any], dict[str, Any]],
    *,
    conditions: Sequence[ColumnElement[bool]],
    shape: Hashable = None,
    params: PageParams,
    request: Request,
    **values: Any,
) -> Response:
    """A hot list's page: the rows of `keyset_page` through `view`, serialized once by `json_page`."""
    rows, next_url, previous_url = await keyset_page(
        db, query, conditions=conditions, shape=shape, params=params, request=request, **values
    )
    return json_page(next_url, previous_url, [view(row) for row in rows])


def json_page(next_url: str | None, previous_url: str | None, results: list[dict[str, Any]]) -> Response:
    """A page serialized once by `kit.views`, byte for byte as the response model would.

    orjson serializes asyncpg's UUIDs and the datetimes in native code, where pydantic's `to_json`
    and `iso_utc` cost more than the query (figures in bench/ANALYSIS.md).
    """
    return json_response({"next": next_url, "previous": previous_url, "results": results}, status_code=200)
