"""Fast paths: the hottest GET lists answered without FastAPI's dependency resolution.

An endpoint may carry a fast handler (`@fast_path(handler)`, routers with `FastPathRoute`).
The handler gets the request and returns a response for the plain, successful case only, or
None for anything else: a missing or unusual credential, a failed access check, a parameter
that needs validating, a database error. The route then runs as declared, so dependencies,
validation, every error response and the OpenAPI schema stay the endpoint's, and what a fast
handler answers is a subset of what its endpoint answers, byte for byte
(tests/test_fast_paths.py sends the same requests with fast paths on and off).

Why: on a page of 25 apps, FastAPI's dependency resolution (the access chain, the session,
the page and path parameters, each validated) and the SQLAlchemy session around two raw
statements cost more CPU than the statements and the JSON together (bench/ANALYSIS.md).
A fast handler runs the same compiled statements on one pooled asyncpg connection.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

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


class FastPathRoute(APIRoute):
    """An APIRoute that first offers the request to its endpoint's fast handler, if it has one."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()
        handler: FastHandler | None = getattr(self.endpoint, _ATTRIBUTE, None)
        if handler is None:
            return declared
        answered = FAST_PATH_REQUESTS.labels(self.path, "answered")
        declined = FAST_PATH_REQUESTS.labels(self.path, "declined")

        async def route_handler(request: Request) -> Response:
            connections: ConnectionFactory | None = getattr(request.app.state, "fast_path_connections", None)
            if connections is not None:
                response = await _offer(handler, request, connections)
                if response is not None:
                    answered.inc()
                    return response
                declined.inc()
            return await declared(request)

        return route_handler


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
