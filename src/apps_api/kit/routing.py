"""Routers included flat: every route at the application's top level, as FastAPI < 0.120 did.

FastAPI now keeps an included router as one nested route (`_IncludedRouter`): a request scans
the included router's routes to match it, then again to handle it, one level per include. With
the domain routers (and their sections) nested, matching cost about a tenth of a read's CPU
(bench/ANALYSIS.md). Adding each route to the application itself, with the attributes it was
declared with, gives the same routes, names and OpenAPI and one scan per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_parameterless_sub_dependant
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from fastapi.telemetry._api import _route_selected
from starlette._utils import get_route_path
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route, Router
from starlette.types import Receive, Scope, Send

_DOCUMENTED: Final = "__documented_security__"
Call = TypeVar("Call", bound=Callable[..., Any])


def documents_security(scheme: SecurityBase) -> Callable[[Call], Call]:
    """Mark a dependency that reads its credentials itself: every route using it documents
    `scheme` in OpenAPI as if it depended on it, without FastAPI resolving the scheme as a
    dependency level of its own at every request (each level costs about as much as a bare
    Starlette route, bench/ANALYSIS.md)."""

    def mark(call: Call) -> Call:
        setattr(call, _DOCUMENTED, scheme)
        return call

    return mark


def _documented_schemes(dependant: Dependant) -> list[SecurityBase]:
    schemes: list[SecurityBase] = []
    pending = [dependant]
    while pending:
        current = pending.pop()
        scheme = getattr(current.call, _DOCUMENTED, None)
        if scheme is not None and scheme not in schemes:
            schemes.append(scheme)
        pending.extend(current.dependencies)
    return schemes


def _document_security(route: APIRoute) -> None:
    """Give OpenAPI the schemes of the route's `documents_security` dependencies. The request
    handler was built from the route's dependant already and keeps it: only OpenAPI, which reads
    `route.dependant`, sees the schemes as dependencies."""
    schemes = _documented_schemes(route.dependant)
    if schemes:
        path = route.path_format
        documented = [
            get_parameterless_sub_dependant(depends=Depends(cast(Callable[..., Any], each)), path=path)
            for each in schemes
        ]
        route.dependant = dataclasses.replace(
            route.dependant, dependencies=[*route.dependant.dependencies, *documented]
        )


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """Add the routes of `router` and of every router it includes to `app`, in order.

    Only for routers whose includes take no options (prefix, tags, dependencies): those are
    declared on the routers themselves, so each route already carries them.
    """
    for route in _routes(router):
        if isinstance(route, APIRoute):
            app.router.add_api_route(
                route.path,
                route.endpoint,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=route.tags,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=route.responses,
                deprecated=route.deprecated,
                methods=route.methods,
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                route_class_override=type(route),
            )
            added = app.router.routes[-1]
            assert isinstance(added, APIRoute)
            _document_security(added)
        else:
            app.router.routes.append(route)
    app.router._mark_routes_changed()


def _routes(router: APIRouter) -> list[BaseRoute]:
    from fastapi.routing import _IncludedRouter

    routes: list[BaseRoute] = []
    for route in router.routes:
        if isinstance(route, _IncludedRouter):
            context = route.include_context
            if context.prefix or context.tags or context.dependencies or context.responses:
                raise ValueError(f"include_flat: {route.original_router!r} is included with options")
            routes.extend(_routes(route.original_router))
        else:
            routes.append(route)
    return routes


# --- the route index: one request matched against the routes that can match it ------------------

_MATCHED: Final = "apps_api.matched_route"
_ANY: Final = None  # a last segment that is (or holds) a parameter


def _shape(route: BaseRoute) -> tuple[int, str | None] | None:
    """(segments, last segment or _ANY) of every path the route can match; None: any path (a
    mount, a `{name:path}` parameter, or a route of a kind this index does not know)."""
    if not isinstance(route, Route) or ":path}" in route.path:
        return None
    segments = route.path.split("/")
    last = segments[-1]
    # A default, int, float or uuid parameter matches one whole non-empty segment, never a "/".
    return len(segments), (_ANY if "{" in last else last)


class RouteIndex(BaseRoute):
    """First among the application's routes: it matches a request against only the routes whose
    shape (number of path segments, last segment) can match it, in their declared order, and hands
    the request to the first that matches it fully.

    Starlette's router tries each route in turn, a regular expression each: the application's
    hundred-odd routes cost about a twentieth of a read's CPU (bench/ANALYSIS.md, tenth round).
    What the index finds is what the router would have found (the first full match in declared
    order, among routes that all others could not match); when it finds none it matches nothing,
    and the router goes on through every route as before (a 405, a redirect of a trailing slash,
    a 404). tests/kit/test_routing.py compares the two on every route of the application.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._indexed: tuple[int, int] | None = None
        self._by_shape: dict[tuple[int, str | None], list[BaseRoute]] = {}
        self._by_count: dict[int, list[BaseRoute]] = {}
        self._anywhere: list[BaseRoute] = []

    def _index(self) -> None:
        routes = [route for route in self.router.routes if route is not self]
        shapes = [_shape(route) for route in routes]
        counts = {shape[0] for shape in shapes if shape is not None}
        literals = {shape for shape in shapes if shape is not None and shape[1] is not _ANY}

        def fits(shape: tuple[int, str | None] | None, count: int, last: str | None) -> bool:
            return shape is None or (shape[0] == count and shape[1] in (_ANY, last))

        self._by_shape = {
            (count, last): [r for r, s in zip(routes, shapes, strict=True) if fits(s, count, last)]
            for count, last in literals
        }
        self._by_count = {
            count: [r for r, s in zip(routes, shapes, strict=True) if fits(s, count, _ANY)]
            for count in counts
        }
        self._anywhere = [route for route, shape in zip(routes, shapes, strict=True) if shape is None]
        self._indexed = (id(self.router.routes), len(self.router.routes))

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that can match `path`, in declared order."""
        if self._indexed != (id(self.router.routes), len(self.router.routes)):
            self._index()
        segments = path.split("/")
        count = len(segments)
        found = self._by_shape.get((count, segments[-1]))
        if found is None:
            found = self._by_count.get(count, self._anywhere)
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                child_scope[_MATCHED] = route
                return match, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope[_MATCHED]
        # What the router does with the route it selects (FastAPI's telemetry's route name).
        _route_selected(scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, Mount))
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)


def index_routes(app: FastAPI) -> None:
    """Put a `RouteIndex` first among the application's routes (once all are added; routes added
    later are indexed at the next request)."""
    if not any(isinstance(route, RouteIndex) for route in app.router.routes):
        app.router.routes.insert(0, RouteIndex(app.router))
        app.router._mark_routes_changed()
