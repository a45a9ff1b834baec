"""Fast paths: the hottest GET lists answered without FastAPI's dependency resolution.

An endpoint may carry a fast handler (`@fast_path(handler)`). `FastPathMiddleware` offers a
GET whose path matches such a route to the handler before routing, on one pooled asyncpg
connection. The handler returns a response for the plain, successful case only, or
None for anything else: a missing or unusual credential, a failed access check, a parameter
that needs validating, a database error. The route then runs as declared, so dependencies,
validation, every error response and the OpenAPI schema stay the endpoint's, and what a fast
handler answers is a subset of what its endpoint answers, byte for byte
(tests/test_fast_paths.py sends the same requests with fast paths on and off).

Why: on a page of 25 apps, FastAPI's dependency resolution (the access chain, the session,
the page and path parameters, each validated) and the SQLAlchemy session around two raw
statements cost more CPU than the statements and the JSON together (bench/ANALYSIS.md).
Routing itself (FastAPI matches every included route in turn) and the inner middleware stack
were another tenth of a request: the middleware sits in front of them. A fast handler runs the
same compiled statements and views as its route. The routes' own paths decide what matches;
`tests/test_fast_paths.py` would see another route answering a fast route's path, as the bodies
with fast paths off would differ.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.convertors import StringConvertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps_api.kit.db import request_session
from apps_api.kit.driver import driver_connection
from apps_api.observability.metrics import FAST_PATH_REQUESTS

logger = logging.getLogger(__name__)

FastHandler = Callable[[Request, asyncpg.Connection], Awaitable[Response | None]]
FastWriteHandler = Callable[[Request, AsyncSession], Awaitable[Response | None]]
ConnectionFactory = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Input = TypeVar("Input", bound=BaseModel)

_READ = "__apps_api_fast_path__"
_WRITE = "__apps_api_fast_write__"
_TRANSACTION = "__apps_api_fast_transaction__"


def fast_path(handler: FastHandler) -> Callable[[Endpoint], Endpoint]:
    """Give a GET endpoint a fast handler for its plain, successful requests (module docstring)."""
    return _attach(_READ, handler)


def fast_write(handler: FastWriteHandler) -> Callable[[Endpoint], Endpoint]:
    """Give a POST endpoint a fast handler, run in the request's session and unit of work.

    The handler may decline (None) only before it changes anything. Once it has written, it
    answers or raises: an error rolls the unit of work back and the route runs from scratch
    (an install that meets a 409 is thus tried twice; nothing is left behind by the first).
    """
    return _attach(_WRITE, handler)


def fast_transaction(handler: FastHandler) -> Callable[[Endpoint], Endpoint]:
    """Give a POST endpoint a fast handler run on one pooled asyncpg connection, in a transaction.

    For a write whose service runs on a bare connection too (creating an app: one INSERT): no
    session, BEGIN and COMMIT straight on the driver. The transaction commits when the handler
    answers and rolls back when it raises; as for `fast_write`, it declines only before writing.
    """
    return _attach(_TRANSACTION, handler)


def _attach(attribute: str, handler: Callable[..., Any]) -> Callable[[Endpoint], Endpoint]:
    def attach(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, attribute, handler)
        return endpoint

    return attach


def pooled_connections(engine: AsyncEngine) -> ConnectionFactory:
    """Fast handlers' connections: the engine's pool, each statement committed on its own."""

    def connect() -> AbstractAsyncContextManager[asyncpg.Connection]:
        return driver_connection(engine, transaction=False)

    return connect


def enable(state: Any, connections: ConnectionFactory | None) -> None:
    """Turn fast paths on (with the read handlers' connections) or off (None) for an application."""
    state.fast_path_connections = connections


async def json_body(request: Request, model: type[Input]) -> Input | None:
    """The JSON body validated as the route would (json.loads, then the model), or None if it would not."""
    try:
        return model.model_validate(json.loads(await request.body()))
    except ValueError:  # not JSON, not UTF-8, or not valid (pydantic's ValidationError)
        return None


class FastPathMiddleware:
    """Offers a request for a route with a fast handler to that handler, before routing."""

    def __init__(self, app: ASGIApp, *, routers: Sequence[APIRouter]) -> None:
        self.app = app
        self.routes = [
            _FastRoute(route, method, handler, kind=attribute)
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute)
            for attribute, method in ((_READ, "GET"), (_WRITE, "POST"), (_TRANSACTION, "POST"))
            if (handler := getattr(route.endpoint, attribute, None)) is not None
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "POST"):
            connections: ConnectionFactory | None = getattr(scope["app"].state, "fast_path_connections", None)
            if connections is not None:
                path, method = _route_path(scope), scope["method"]
                for fast in self.routes:
                    match = fast.path_regex.match(path) if fast.method == method else None
                    if match is None:
                        continue
                    child = {**scope, "path_params": match.groupdict(), "route": fast.route}
                    if fast.kind == _READ:
                        response = await _offer(fast.handler, Request(child, receive, send), connections)
                    else:
                        received: list[Message] = []
                        request = Request(child, _recording(receive, received), send)
                        if fast.kind == _WRITE:
                            response = await _offer_write(fast.handler, request)
                        else:
                            response = await _offer(fast.handler, request, connections, transaction=True)
                        receive = _replaying(received, receive)  # the route reads the body again
                    if response is None:
                        fast.declined.inc()
                        break
                    fast.answered.inc()
                    scope["route"] = fast.route  # the access log and the metrics name the route
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _recording(receive: Receive, received: list[Message]) -> Receive:
    async def recording() -> Message:
        message = await receive()
        received.append(message)
        return message

    return recording


def _replaying(received: list[Message], receive: Receive) -> Receive:
    pending = list(received)

    async def replaying() -> Message:
        return pending.pop(0) if pending else await receive()

    return replaying


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path an ASGI server mounted the app under."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


class _FastRoute:
    __slots__ = ("answered", "declined", "handler", "kind", "method", "path_regex", "route")

    def __init__(self, route: APIRoute, method: str, handler: Any, *, kind: str) -> None:
        # Path parameters are plain strings on these routes: the handler parses them.
        assert all(isinstance(convertor, StringConvertor) for convertor in route.param_convertors.values())
        assert route.methods == {method}, f"{route.path}: a fast {method} handler on {route.methods}"
        self.route, self.method, self.handler, self.kind = route, method, handler, kind
        self.path_regex = route.path_regex
        self.answered = FAST_PATH_REQUESTS.labels(route.path, "answered")
        self.declined = FAST_PATH_REQUESTS.labels(route.path, "declined")


async def _offer(
    handler: FastHandler, request: Request, connections: ConnectionFactory, *, transaction: bool = False
) -> Response | None:
    try:
        async with connections() as connection:
            if not transaction:
                return await handler(request, connection)
            async with connection.transaction():
                return await handler(request, connection)
    except Exception:
        # The declared route runs next and answers the error its own way (a 503 for a lost
        # database); the trace is for whoever wonders why a fast path declines.
        logger.debug("fast path declined after an error", exc_info=True)
        return None


async def _offer_write(handler: FastWriteHandler, request: Request) -> Response | None:
    try:
        async with request_session(request) as session:
            return await handler(request, session)
    except Exception:
        # Rolled back by the unit of work; the route runs next and answers the error its own way.
        logger.debug("fast write declined after an error", exc_info=True)
        return None


def path_uuid(request: Request, name: str) -> uuid.UUID | None:
    """A path parameter written as a canonical UUID (what the declared route surely accepts), else None."""
    value = request.path_params.get(name)
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@asynccontextmanager
async def borrowed(connection: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A factory's context for a connection someone else owns (tests: the test's transaction)."""
    yield connection
