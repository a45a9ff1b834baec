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

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.convertors import StringConvertor
from starlette.types import ASGIApp, Receive, Scope, Send

from apps_api.kit.driver import driver_connection
from apps_api.observability.metrics import FAST_PATH_REQUESTS

logger = logging.getLogger(__name__)

FastHandler = Callable[[Request, asyncpg.Connection], Awaitable[Response | None]]
ConnectionFactory = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_ATTRIBUTE = "__apps_api_fast_path__"


def fast_path(handler: FastHandler) -> Callable[[Endpoint], Endpoint]:
    """Give an endpoint a fast handler for its plain, successful requests (module docstring)."""

    def attach(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _ATTRIBUTE, handler)
        return endpoint

    return attach


def pooled_connections(engine: AsyncEngine) -> ConnectionFactory:
    """Fast handlers' connections: the engine's pool, each statement committed on its own."""

    def connect() -> AbstractAsyncContextManager[asyncpg.Connection]:
        return driver_connection(engine, transaction=False)

    return connect


def enable(state: Any, connections: ConnectionFactory | None) -> None:
    """Turn fast paths on (a connection factory) or off (None) for an application's state."""
    state.fast_path_connections = connections


class FastPathMiddleware:
    """Offers a GET of a route with a fast handler to that handler, before routing."""

    def __init__(self, app: ASGIApp, *, routers: Sequence[APIRouter]) -> None:
        self.app = app
        self.routes = [
            _FastRoute(route, handler)
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute)
            and (handler := getattr(route.endpoint, _ATTRIBUTE, None)) is not None
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            connections: ConnectionFactory | None = getattr(scope["app"].state, "fast_path_connections", None)
            if connections is not None:
                path = _route_path(scope)
                for fast in self.routes:
                    match = fast.path_regex.match(path)
                    if match is None:
                        continue
                    request = Request(
                        {**scope, "path_params": match.groupdict(), "route": fast.route}, receive, send
                    )
                    response = await _offer(fast.handler, request, connections)
                    if response is None:
                        fast.declined.inc()
                        break
                    fast.answered.inc()
                    scope["route"] = fast.route  # the access log and the metrics name the route
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path an ASGI server mounted the app under."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


class _FastRoute:
    __slots__ = ("answered", "declined", "handler", "path_regex", "route")

    def __init__(self, route: APIRoute, handler: FastHandler) -> None:
        # Path parameters are plain strings on these routes: the handler parses them.
        assert all(isinstance(convertor, StringConvertor) for convertor in route.param_convertors.values())
        self.route, self.handler, self.path_regex = route, handler, route.path_regex
        self.answered = FAST_PATH_REQUESTS.labels(route.path, "answered")
        self.declined = FAST_PATH_REQUESTS.labels(route.path, "declined")


async def _offer(handler: FastHandler, request: Request, connections: ConnectionFactory) -> Response | None:
    try:
        async with connections() as connection:
            return await handler(request, connection)
    except Exception:
        # The declared route runs next and answers the error its own way (a 503 for a lost
        # database); the trace is for whoever wonders why a fast path declines.
        logger.debug("fast path declined after an error", exc_info=True)
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
