"""kit/routing.py: routes included flat, and schemes documented without a dependency level.

No `from __future__ import annotations`: the routes are declared inside the tests, and FastAPI
resolves their string annotations in the module's namespace, where local names are not.
"""

import re
import uuid
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import APIKeyHeader
from starlette.routing import Match, NoMatchFound, Route

from apps_api.kit.routing import _MATCHED, RouteIndex, documents_security, include_flat
from apps_api.main import create_app


class CountedHeader(APIKeyHeader):
    """An API key scheme that counts how often FastAPI resolves it."""

    calls = 0

    async def __call__(self, request: Request) -> str | None:
        CountedHeader.calls += 1
        return await super().__call__(request)


def application() -> tuple[FastAPI, CountedHeader]:
    scheme = CountedHeader(name="Authorization", auto_error=False, scheme_name="Counted")

    @documents_security(scheme)
    async def caller(request: Request) -> str:
        return request.headers.get("authorization") or "nobody"

    inner, outer = APIRouter(), APIRouter()

    @inner.get("/who")
    async def who(name: Annotated[str, Depends(caller)]) -> dict[str, Any]:
        return {"caller": name}

    @inner.get("/open")
    async def open_route() -> dict[str, Any]:
        return {}

    outer.include_router(inner)
    app = FastAPI()
    include_flat(app, outer)
    return app, scheme


async def test_a_documented_scheme_is_in_openapi_but_never_resolved() -> None:
    app, _ = application()
    schema = app.openapi()
    assert schema["paths"]["/who"]["get"]["security"] == [{"Counted": []}]
    assert "security" not in schema["paths"]["/open"]["get"]
    assert schema["components"]["securitySchemes"]["Counted"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }

    CountedHeader.calls = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.get("/who", headers={"Authorization": "Token k"})
    assert answer.status_code == 200 and answer.json() == {"caller": "Token k"}
    assert CountedHeader.calls == 0  # the dependency read the header itself: no level of its own


async def test_the_same_scheme_as_a_dependency_is_resolved_at_every_request() -> None:
    """The control: declared as a plain dependency, FastAPI calls the scheme (what
    `documents_security` saves), and OpenAPI shows the same requirement."""
    scheme = CountedHeader(name="Authorization", auto_error=False, scheme_name="Counted")
    router = APIRouter()

    @router.get("/who")
    async def who(key: Annotated[str | None, Depends(scheme)]) -> dict[str, Any]:
        return {"caller": key}

    app = FastAPI()
    include_flat(app, router)
    assert app.openapi()["paths"]["/who"]["get"]["security"] == [{"Counted": []}]
    CountedHeader.calls = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/who", headers={"Authorization": "Token k"})).status_code == 200
    assert CountedHeader.calls == 1


# --- the route index ------------------------------------------------------------------------------


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }


def _first_full(routes: list[Any], scope: dict[str, Any]) -> Any:
    """Starlette's router's choice: the first route that matches fully, in declared order."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def _paths_of(template: str) -> list[str]:
    filled = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), template)
    parent = filled.rpartition("/")[0]
    return [
        filled,
        filled + "/",
        filled.rstrip("/"),
        parent,
        parent + "/other",
        filled + "/extra",
        filled + "x",
    ]


def test_the_index_picks_what_the_router_would_for_every_route_of_the_application() -> None:
    app = create_app()
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    routes = app.router.routes[1:]
    paths = [path for route in routes if isinstance(route, Route) for path in _paths_of(route.path)]
    paths += ["/", "/static/swagger-ui.css", "/static/nope/deeper.js", "/nothing/here", "", "//", "/api/v5//"]
    compared = found = 0
    for path in paths:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
            scope = _scope(method, path)
            match, child = index.matches(scope)
            expected = _first_full(routes, scope)
            assert (child.get(_MATCHED) if match is Match.FULL else None) is expected, (method, path)
            compared += 1
            found += expected is not None
    assert compared > 5000 and found > 500  # the whole application, matches and misses alike


def test_the_index_sees_routes_added_after_it_and_matches_no_websocket() -> None:
    app = create_app()
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    scope = _scope("GET", "/late/route")
    assert index.matches(scope)[0] is Match.NONE

    @app.get("/late/route")
    async def late() -> dict[str, Any]:
        return {}

    match, child = index.matches(scope)
    assert match is Match.FULL and child[_MATCHED].path == "/late/route"
    assert index.matches({**scope, "type": "websocket"})[0] is Match.NONE
    with pytest.raises(NoMatchFound):
        index.url_path_for("late")
    assert app.url_path_for("late") == "/late/route"


async def test_requests_through_the_index_reach_their_route_and_a_miss_is_the_routers_own() -> None:
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        schema = await client.get("/openapi.json")  # the route's own answer
        assert schema.status_code == 200 and "paths" in schema.json()
        assert (await client.delete("/openapi.json")).status_code == 405  # the router's partial
        assert (await client.get("/api/v5/no_such_thing")).status_code == 404
