"""The console's lists: 25 a page, newest first, through the API's own page statements and signed
cursors (`keyset_page`, `paginate`); the links keep the page's query but a one-time notice."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from apps_api.kit.pagination import KeysetQuery, PageParams, keyset_page, paginate

PAGE_SIZE = 25


@dataclass(frozen=True)
class ListPage:
    rows: list[Any]
    next_url: str | None
    previous_url: str | None

    @property
    def links(self) -> dict[str, Any]:
        """The pager's links, as the templates name them."""
        return {"next_url": self.next_url, "previous_url": self.previous_url}


@dataclass(frozen=True)
class Pager:
    """Where in a list a page is (`cursor`), and the request its links are built from."""

    request: Request
    cursor: str | None

    @property
    def params(self) -> PageParams:
        return PageParams(cursor=self.cursor or None, page_size=PAGE_SIZE, ordering="-created_at")

    def _links_request(self) -> Request:
        if "notice" not in self.request.query_params:
            return self.request
        query = urlencode(
            [(key, value) for key, value in self.request.query_params.multi_items() if key != "notice"]
        )
        return Request({**self.request.scope, "query_string": query.encode()})

    async def keyset(
        self,
        session: AsyncSession,
        query: KeysetQuery,
        *,
        conditions: Sequence[ColumnElement[bool]],
        shape: Hashable = None,
        **values: Any,
    ) -> ListPage:
        """A page of a compiled `KeysetQuery` (rows as mappings)."""
        rows, next_url, previous_url = await keyset_page(
            session,
            query,
            conditions=conditions,
            shape=shape,
            params=self.params,
            request=self._links_request(),
            **values,
        )
        return ListPage(list(rows), next_url, previous_url)

    async def entities(
        self,
        session: AsyncSession,
        statement: Select[Any],
        *,
        created_at: InstrumentedAttribute[datetime],
        id_: InstrumentedAttribute[Any],
        options: Sequence[Any] = (),
    ) -> ListPage:
        """A page of an ORM statement's entities (eager `options` on the page query only)."""
        rows, next_url, previous_url = await paginate(
            session,
            statement,
            created_at=created_at,
            id_=id_,
            params=self.params,
            request=self._links_request(),
            options=options,
        )
        return ListPage([row[0] for row in rows], next_url, previous_url)


async def pager(request: Request, cursor: Annotated[str | None, Query(max_length=500)] = None) -> Pager:
    return Pager(request, cursor)


PagerDep = Annotated[Pager, Depends(pager)]
