"""kit/solver.py: the planned solver does what FastAPI's own does, on the same trees.

Each scenario runs a small application twice, once with FastAPI's `solve_dependencies` in
`fastapi.routing` and once with the planned one, and compares what the client got and what the
dependencies saw (calls, values, the order of set-up and clean-up against the response).
"""

# No `from __future__ import annotations`: the routes below annotate with local aliases, which
# FastAPI could not resolve from strings.

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import fastapi.dependencies.utils as fastapi_utils
import fastapi.routing as fastapi_routing
import httpx
import pytest
from fastapi import BackgroundTasks, Body, Cookie, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from apps_api.kit import solver
from apps_api.main import create_app

Events = list[str]


class Item(BaseModel):
    name: str
    size: int


def _application(events: Events) -> FastAPI:
    """Every shape of dependency the API uses, and the shapes a plan leaves to FastAPI."""
    app = FastAPI()
    counter = {"shared": 0}

    async def shared() -> int:
        counter["shared"] += 1
        events.append(f"shared {counter['shared']}")
        return counter["shared"]

    async def uncached() -> str:
        events.append("uncached")
        return "fresh"

    async def per_function(request: Request, first: Annotated[int, Depends(shared)]) -> AsyncIterator[str]:
        events.append(f"function open {request.url.path} {first}")
        try:
            yield "function"
        except ValueError as exc:
            events.append(f"function saw {exc}")
            raise
        finally:
            events.append("function closed")

    async def per_request(
        again: Annotated[int, Depends(shared)],
        token: Annotated[str | None, Header()] = None,
    ) -> AsyncIterator[str]:
        events.append(f"request open {again} {token}")
        yield "request"
        events.append("request closed")

    async def checked(
        organization: Annotated[int, Path(ge=1)],
        limit: Annotated[int, Query(le=50)] = 10,
        theme: Annotated[str, Cookie()] = "light",
    ) -> dict[str, Any]:
        return {"organization": organization, "limit": limit, "theme": theme}

    Function = Annotated[str, Depends(per_function, scope="function")]
    Request_ = Annotated[str, Depends(per_request)]
    Checked = Annotated[dict[str, Any], Depends(checked)]

    @app.get("/orgs/{organization}/things")
    async def things(
        function: Function,
        request_scoped: Request_,
        checks: Checked,
        first: Annotated[int, Depends(shared)],
        fresh: Annotated[str, Depends(uncached, use_cache=False)],
        fresh_again: Annotated[str, Depends(uncached, use_cache=False)],
        tags: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI's own way to declare it
    ) -> dict[str, Any]:
        events.append("endpoint")
        return {
            "function": function,
            "request": request_scoped,
            "checks": checks,
            "first": first,
            "fresh": [fresh, fresh_again],
            "tags": tags,
        }

    @app.post("/orgs/{organization}/items", status_code=201)
    async def create_item(
        checks: Checked, item: Item, note: Annotated[str, Body()] = "", function: Function = ""
    ) -> dict[str, Any]:
        events.append(f"create {item.name}")
        return {"checks": checks, "item": item.model_dump(), "note": note, "function": function}

    @app.get("/fails/{organization}")
    async def fails(function: Function, checks: Checked) -> dict[str, str]:
        events.append("endpoint raises")
        raise ValueError("broken")

    # Left to FastAPI: a `Response` parameter, background tasks, a synchronous dependency.
    def synchronous(theme: Annotated[str, Cookie()] = "dark") -> str:
        return f"sync {theme}"

    @app.get("/left/{organization}")
    async def left(
        response: Response,
        tasks: BackgroundTasks,
        checks: Checked,
        sync: Annotated[str, Depends(synchronous)],
    ) -> dict[str, Any]:
        response.headers["x-left"] = "yes"
        response.status_code = 202
        tasks.add_task(events.append, "background ran")
        return {"checks": checks, "sync": sync}

    @app.middleware("http")
    async def mark_response(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        response = await call_next(request)
        events.append("response")
        return response

    return app


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "GET",
        "/orgs/7/things?limit=5&tags=a&tags=b",
        {"headers": {"token": "t"}, "cookies": {"theme": "dark"}},
    ),
    ("GET", "/orgs/7/things", {}),
    # Errors of every kind at once: path, query (two), and FastAPI's order of them.
    ("GET", "/orgs/0/things?limit=99&tags=a", {}),
    ("GET", "/orgs/x/things?limit=y", {}),
    ("POST", "/orgs/3/items", {"json": {"item": {"name": "a", "size": 2}, "note": "n"}}),
    ("POST", "/orgs/3/items", {"json": {"item": {"name": "a", "size": "big"}}}),
    ("POST", "/orgs/0/items", {"json": {"note": 5}}),
    ("POST", "/orgs/3/items", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("GET", "/fails/4", {}),
    ("GET", "/left/4", {"cookies": {"theme": "blue"}}),
]


@contextmanager
def _solving_with(solve: Callable[..., Any]) -> Iterator[None]:
    """FastAPI's request handlers call `solve` (the name they look up in `fastapi.routing`)."""
    original = getattr(fastapi_routing, "solve_dependencies")  # noqa: B009
    setattr(fastapi_routing, "solve_dependencies", solve)  # noqa: B010
    try:
        yield
    finally:
        setattr(fastapi_routing, "solve_dependencies", original)  # noqa: B010


async def _run(install_planned: bool) -> tuple[list[tuple[int, bytes, str | None]], Events]:
    events: Events = []
    app = _application(events)
    answers: list[tuple[int, bytes, str | None]] = []
    with _solving_with(solver.solve_dependencies if install_planned else solver.ORIGINAL):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for method, url, options in REQUESTS:
                kwargs = {key: value for key, value in options.items() if key != "cookies"}
                if cookies := options.get("cookies"):
                    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
                    kwargs["headers"] = {**kwargs.get("headers", {}), "cookie": cookie}
                events.append(f"-> {method} {url}")
                response = await client.request(method, url, **kwargs)
                answers.append((response.status_code, response.content, response.headers.get("x-left")))
    return answers, events


async def test_the_planned_solver_answers_and_calls_as_fastapis_own() -> None:
    fastapis, fastapi_events = await _run(install_planned=False)
    planned, planned_events = await _run(install_planned=True)
    assert planned == fastapis
    assert planned_events == fastapi_events
    # Not two empty runs: the scenarios reached what they are about.
    statuses = [status for status, _, _ in fastapis]
    assert statuses == [200, 200, 422, 422, 201, 422, 422, 422, 500, 202]
    assert fastapis[9][2] == "yes"  # the `Response` parameter's header (FastAPI's solver)
    assert "background ran" in fastapi_events
    # Within one request: the shared dependency once, the uncached one twice, the function-scoped
    # generator closed before the response and the request-scoped one after it.
    first = fastapi_events[: fastapi_events.index("-> GET /orgs/7/things")]
    assert first.count("shared 1") == 1 and "shared 2" not in first
    assert first.count("uncached") == 2
    assert first.index("function closed") < first.index("response") < first.index("request closed")
    assert "function saw broken" in fastapi_events


async def test_the_errors_are_fastapis_own_in_its_order() -> None:
    fastapis, _ = await _run(install_planned=False)
    planned, _ = await _run(install_planned=True)
    both_errors = [(a, b) for a, b in zip(fastapis, planned, strict=True) if a[0] == 422]
    assert len(both_errors) == 5
    for theirs, ours in both_errors:
        assert ours[1] == theirs[1]
    assert b'"loc":["path","organization"]' in fastapis[2][1]
    assert fastapis[2][1].index(b'"path"') < fastapis[2][1].index(b'"query"')


def _handler_dependant(route: APIRoute) -> Any:
    # The dependant the request handler was built from (`route.dependant` may carry OpenAPI-only
    # additions, kit/routing.documents_security).
    return get_dependant(path=route.path_format, call=route.endpoint)


def test_every_route_of_the_api_is_planned_but_those_with_a_response_parameter() -> None:
    app = create_app()
    assert getattr(fastapi_routing, "solve_dependencies") is solver.solve_dependencies  # noqa: B009
    assert solver.ORIGINAL is fastapi_utils.solve_dependencies
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    assert len(routes) > 100
    left = sorted(
        (route.path, *sorted(route.methods or ()))
        for route in routes
        if solver.plan_of(_handler_dependant(route)) is None
    )
    assert left == [
        ("/internal/v1/organizations/{organization}", "PUT"),
        ("/internal/v1/organizations/{organization}/partners/{partner}", "PUT"),
        ("/internal/v1/organizations/{organization}/users/{user}", "PUT"),
    ]
    for route in routes:
        if (route.path, *sorted(route.methods or ())) in left:
            assert _handler_dependant(route).response_param_name == "response"


def test_a_plan_is_made_once_per_dependant_and_again_for_a_new_one() -> None:
    async def endpoint() -> None:
        return None

    dependant = get_dependant(path="/", call=endpoint)
    plan = solver.plan_of(dependant)
    assert plan is not None and solver.plan_of(dependant) is plan
    assert solver.plan_of(get_dependant(path="/", call=endpoint)) is not plan


def test_the_shared_blank_response_cannot_carry_headers_from_one_request_to_the_next() -> None:
    blank = solver._BLANK
    assert blank.status_code is None
    assert list(blank.headers.raw) == []
    with pytest.raises(AttributeError):
        blank.headers.raw.append((b"x-leak", b"1"))


async def test_dependency_overrides_go_to_fastapis_solver() -> None:
    events: Events = []
    app = _application(events)

    async def other() -> int:
        return 41

    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/orgs/{organization}/things")
    shared_call = next(d for d in route.dependant.dependencies if d.name == "first").call
    assert shared_call is not None
    app.dependency_overrides[shared_call] = other
    with _solving_with(solver.solve_dependencies):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/orgs/7/things")
    assert response.status_code == 200
    assert response.json()["first"] == 41
