"""What the operator API's routes share: path keys, loaders, errors, pages, the PUT answer.

A GET reads on a `ReadConnection` of its own (`ReadDb`, the `Read...` loaders, `read_page_of`);
a write loads the ORM objects on the request's session (`OrganizationDep`, `UserDep`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement

from apps_api.auth.service_keys import ServiceKeyRequired
from apps_api.kit.db import ReadConnections, SessionDep
from apps_api.kit.driver import ReadConnection
from apps_api.kit.errors import BadRequest, Conflict, NotFound, error_responses
from apps_api.kit.pagination import KeysetQuery, Page, PageParams, keyset_page
from apps_api.models import Organization, User
from apps_api.operator import queries
from apps_api.platform import service as platform
from apps_api.platform.service import AlreadyTaken, PlatformError, UnknownObject

View = TypeVar("View", bound=BaseModel)
PREFIX = "/internal/v1/organizations"


def operator_router() -> APIRouter:
    """A router of operator routes: the prefix, the service key, the tag, and the errors every
    operator route may answer (a route documents its others itself)."""
    return APIRouter(
        prefix=PREFIX,
        tags=["Internal: operator"],
        dependencies=[ServiceKeyRequired],
        responses=error_responses(400, 401, 404),
    )


_KEY = "the operator's `external_id`, or `id:<uuid>` for its `id`"
OrganizationKey = Annotated[str, Path(description=f"The organization: {_KEY}.")]
UserKey = Annotated[str, Path(description=f"The user: {_KEY}.")]
PartnerKey = Annotated[str, Path(description=f"The partner organization: {_KEY}.")]
TokenId = Annotated[uuid.UUID, Path(description="The ID of the API token.")]


@contextmanager
def operator_errors() -> Iterator[None]:
    """The service's refusals as the API's errors: 404 unknown, 409 taken, 400 invalid (by field)."""
    try:
        yield
    except UnknownObject as exc:
        raise NotFound(_sentence(exc)) from None
    except AlreadyTaken as exc:
        raise Conflict(_sentence(exc)) from None
    except PlatformError as exc:
        if exc.field is None:
            raise BadRequest(_sentence(exc)) from None
        raise BadRequest(errors={exc.field: [_sentence(exc)]}) from None


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def organization_of(session: SessionDep, organization: OrganizationKey) -> Organization:
    """The organization named in the path; 404 otherwise."""
    with operator_errors():
        return await platform.organization_by_key(session=session, key=organization)


OrganizationDep = Annotated[Organization, Depends(organization_of)]


async def user_of(session: SessionDep, organization: OrganizationDep, user: UserKey) -> User:
    """The organization's live user named in the path; 404 otherwise."""
    with operator_errors():
        return await platform.user_by_key(session=session, organization_id=organization.id, key=user)


UserDep = Annotated[User, Depends(user_of)]


async def read_connection(request: Request) -> AsyncIterator[ReadConnection]:
    """A GET's database: a connection of its own that only reads (no session, no transaction)."""
    read_connections: ReadConnections = request.app.state.read_connections
    async with read_connections() as db:
        yield db


# scope="function": the connection goes back to the pool before the response is sent.
ReadDb = Annotated[ReadConnection, Depends(read_connection, scope="function")]


async def read_organization_of(db: ReadDb, organization: OrganizationKey) -> asyncpg.Record:
    """`organization_of` for a GET: the organization's row, on its read connection."""
    with operator_errors():
        return await queries.organization_by_key(db=db, key=organization)


ReadOrganization = Annotated[asyncpg.Record, Depends(read_organization_of)]


async def read_user_of(db: ReadDb, organization: ReadOrganization, user: UserKey) -> asyncpg.Record:
    """`user_of` for a GET: the user's row, on its read connection."""
    with operator_errors():
        return await queries.user_by_key(db=db, organization_id=organization["id"], key=user)


ReadUser = Annotated[asyncpg.Record, Depends(read_user_of)]


async def read_page_of(
    db: ReadConnection,
    query: KeysetQuery,
    *,
    conditions: Sequence[ColumnElement[bool]],
    view: Callable[[Any], View],
    params: PageParams,
    request: Request,
    **values: Any,
) -> Page[View]:
    """A page of the query's rows (its `conditions` filled by `values`), as `view`."""
    rows, next_url, previous_url = await keyset_page(
        db, query, conditions=conditions, params=params, request=request, **values
    )
    return Page(next=next_url, previous=previous_url, results=[view(row) for row in rows])


# The answer of a write that would take a unique value (an email, an external id) another has.
CONFLICT = error_responses(409)


def put_responses(view: type[BaseModel], created: str, *errors: int) -> dict[int | str, dict[str, Any]]:
    """The documented answers of a PUT that creates (201, described as `created`) or keeps (200)."""
    return {201: {"model": view, "description": created}, **error_responses(*errors)}


def answer_put(response: Response, *, created: bool) -> None:
    """201 when the PUT created the object, 200 when it existed (changed or not)."""
    response.status_code = 201 if created else 200
