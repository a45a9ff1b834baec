"""FastAPI's dependency solving, planned once per route instead of worked out per request.

For every request FastAPI 0.165 (`fastapi.dependencies.utils.solve_dependencies`) walks the
route's dependency tree as if it were new: at every level it builds a `Response` for a
`response: Response` parameter nobody declared, asks whether each call is a generator or a
coroutine, works out its cache key from its OAuth scopes, and builds the request's query, header
and cookie maps to validate the level's parameters of each kind, most of them none. About a tenth
of the CPU of a GET of one owned app (bench/ANALYSIS.md, tenth round).

`install()` puts `solve_dependencies` below in `fastapi.routing`, where the request handler looks
it up. The first request of a route plans its tree (a `_Plan` per level: its sub-plans, the call's
kind, the cache key, the parameter lists that are not empty); later requests follow the plan and
do the same work in the same order: sub-dependencies first (each once per request, by FastAPI's
cache key), generators through FastAPI's own `_solve_generator` (the same stacks and shielded
exit), then the level's path, query, header, cookie and body parameters through FastAPI's own
validation, so every value and every error is FastAPI's.

Anything a plan does not cover goes to FastAPI's solver unchanged: dependency overrides (tests),
a tree with a `Response`, `BackgroundTasks`, `SecurityScopes`, WebSocket or `HTTPConnection`
parameter, a synchronous or concurrency-limited call. `tests/kit/test_solver.py` runs both solvers
on the same trees and compares them, and fails if FastAPI renames what this relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import fastapi.dependencies.utils as fastapi_utils
import fastapi.routing as fastapi_routing
from fastapi import Response
from fastapi._compat import Undefined
from fastapi.dependencies.models import (
    Dependant,
    _get_cache_key,
    _is_async_gen_callable,
    _is_coroutine_callable,
)
from fastapi.dependencies.utils import (
    SolvedDependency,
    _solve_generator,
    request_body_to_args,
    request_params_to_args,
)
from starlette.requests import Request

from apps_api.kit.db import FUNCTION_STACK

ORIGINAL: Final = fastapi_utils.solve_dependencies
# By the dependant's id, with the dependant itself (its id is not reused while it is held here).
# Dependants have slots, so the plan cannot ride on them. An application's routes are a few
# hundred; the bound only matters to a process that builds application after application (tests).
_PLANS: Final[dict[int, tuple[Dependant, _Plan | None]]] = {}
_MAX_PLANS: Final = 10_000


def _blank_response() -> Response:
    # What FastAPI hands every level for a `response: Response` parameter; in a planned tree no
    # level declares one, so nothing can write to it, and the handler only reads its status (None)
    # and headers (none). A tuple: an unexpected write fails loudly rather than leaking headers
    # from one request into the next.
    response = Response()
    response.raw_headers = ()  # type: ignore[assignment]
    response.status_code = None  # type: ignore[assignment]
    return response


_BLANK: Final = _blank_response()
# Where FastAPI's request handler keeps the request-scoped stack (the function-scoped one is kit.db's).
_REQUEST_STACK: Final = "fastapi_inner_astack"


@dataclass(frozen=True, slots=True)
class _Plan:
    """One level of a route's dependency tree, as the request handler will solve it."""

    dependant: Dependant
    subs: tuple[_Plan, ...]
    cache_key: Any
    is_generator: bool
    function_scope: bool
    # The level's parameters by where the request holds them (a `Request` attribute), only the
    # kinds it has, in FastAPI's order: path, query, header, cookie.
    params: tuple[tuple[tuple[Any, ...], str], ...]
    body_params: tuple[Any, ...]


class _NotPlanned(Exception):
    """A tree with something a plan does not cover: FastAPI's own solver takes it."""


def _level(dependant: Dependant, *, top: bool) -> _Plan:
    if (
        dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.concurrency is not None
    ):
        raise _NotPlanned
    call = dependant.call
    is_generator = not top and _is_async_gen_callable(call)
    if not top and not is_generator and not _is_coroutine_callable(call):
        raise _NotPlanned  # synchronous: FastAPI runs it in the thread pool
    return _Plan(
        dependant=dependant,
        subs=tuple(_level(sub, top=False) for sub in dependant.dependencies),
        cache_key=None if top else _get_cache_key(dependant=dependant),
        is_generator=is_generator,
        function_scope=dependant.scope == "function",
        params=tuple(
            (tuple(fields), source)
            for fields, source in (
                (dependant.path_params, "path_params"),
                (dependant.query_params, "query_params"),
                (dependant.header_params, "headers"),
                (dependant.cookie_params, "cookies"),
            )
            if fields
        ),
        body_params=tuple(dependant.body_params),
    )


def plan_of(dependant: Dependant) -> _Plan | None:
    """The plan of a route's dependant (made at its first request), or None: FastAPI solves it."""
    known = _PLANS.get(id(dependant))
    if known is not None and known[0] is dependant:
        return known[1]
    try:
        plan: _Plan | None = _level(dependant, top=True)
    except _NotPlanned:
        plan = None
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[id(dependant)] = (dependant, plan)
    return plan


async def _solve(
    plan: _Plan, request: Request, body: Any, cache: dict[Any, Any], embed_body_fields: bool
) -> tuple[dict[str, Any], list[Any]]:
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in plan.subs:
        sub_values, sub_errors = await _solve(sub, request, body, cache, embed_body_fields)
        if sub_errors:
            errors.extend(sub_errors)
            continue
        dependant = sub.dependant
        key = sub.cache_key
        if dependant.use_cache and key in cache:
            solved = cache[key]
        elif sub.is_generator:
            stack = request.scope[FUNCTION_STACK if sub.function_scope else _REQUEST_STACK]
            solved = await _solve_generator(
                request=request, dependant=dependant, stack=stack, sub_values=sub_values
            )
        else:
            solved = await dependant.call(**sub_values)  # type: ignore[misc]
        if dependant.name is not None:
            values[dependant.name] = solved
        if key not in cache:
            cache[key] = solved
    # FastAPI's order: path, query, header, cookie values, then their errors in that order.
    for fields, source in plan.params:
        found, failed = request_params_to_args(fields, getattr(request, source))
        values.update(found)
        errors += failed
    if plan.body_params:
        found, failed = await request_body_to_args(
            body_fields=list(plan.body_params), received_body=body, embed_body_fields=embed_body_fields
        )
        values.update(found)
        errors.extend(failed)
    name = plan.dependant.request_param_name
    if name:
        values[name] = request
    return values, errors


async def solve_dependencies(
    *,
    request: Any,
    dependant: Dependant,
    body: Any = Undefined,
    background_tasks: Any = None,
    response: Any = None,
    dependency_overrides_provider: Any = None,
    dependency_cache: Any = None,
    embed_body_fields: bool = False,
    **others: Any,
) -> SolvedDependency:
    """FastAPI's `solve_dependencies`, by the route's plan where it has one."""
    plan = None
    if (
        background_tasks is None
        and response is None
        and dependency_cache is None
        and not others.keys() - {"async_exit_stack"}
        and isinstance(request, Request)
        and not getattr(dependency_overrides_provider, "dependency_overrides", None)
    ):
        plan = plan_of(dependant)
    if plan is None:
        return await ORIGINAL(
            request=request,
            dependant=dependant,
            body=body,
            background_tasks=background_tasks,
            response=response,
            dependency_overrides_provider=dependency_overrides_provider,
            dependency_cache=dependency_cache,
            embed_body_fields=embed_body_fields,
            **others,
        )
    cache: dict[Any, Any] = {}
    values, errors = await _solve(plan, request, body, cache, embed_body_fields)
    return SolvedDependency(
        values=values, errors=errors, background_tasks=None, response=_BLANK, dependency_cache=cache
    )


def install() -> None:
    """Put the planned solver where FastAPI's request handler looks it up (again: the original stays)."""
    setattr(fastapi_routing, "solve_dependencies", solve_dependencies)  # noqa: B010
