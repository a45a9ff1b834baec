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
from starlette.routing import BaseRoute

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
