"""The ASGI application factory."""

from __future__ import annotations

import copy
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig

from apps_api import __version__
from apps_api.app_user_tokens.endpoints import router as app_user_tokens_router
from apps_api.apps.endpoints import router as public_apps_router
from apps_api.auth.app_tokens import app_token_authenticator
from apps_api.auth.principal_cache import PrincipalCache, PrincipalListener
from apps_api.console.endpoints import router as console_router
from apps_api.identity.endpoints import router as identity_router
from apps_api.installations.endpoints import router as installations_router
from apps_api.installflow.endpoints import router as install_flow_router
from apps_api.kit.crypto import configure_encryption
from apps_api.kit.db import (
    create_engine,
    engine_read_connections,
    engine_request_sessions,
    engine_write_connections,
)
from apps_api.kit.docs import create_documented_app
from apps_api.kit.errors import ErrorResponse, error_responses, install_error_handlers
from apps_api.kit.param_facts import install as install_param_facts
from apps_api.kit.queue import QueueContextMiddleware
from apps_api.kit.routing import include_flat, index_routes
from apps_api.kit.security import configure_password_hashing
from apps_api.kit.solver import install as install_planned_solver
from apps_api.landing import FAVICON_URL
from apps_api.landing import router as landing_router
from apps_api.observability.endpoints import router as operations_router
from apps_api.observability.middleware import RequestContextMiddleware
from apps_api.observability.shedding import LoadShedMiddleware, count_shed
from apps_api.operator.endpoints import router as operator_router
from apps_api.settings import Settings, get_settings
from apps_api.users.endpoints import router as users_router
from apps_api.webhooks.catalogue import document_channels
from apps_api.webhooks.endpoints import channels_router as webhook_channels_router
from apps_api.webhooks.endpoints import internal_router as ingest_router
from apps_api.webhooks.endpoints import log_router as webhook_log_router
from apps_api.webhooks.endpoints import router as webhooks_router

DESCRIPTION = """
An open implementation of the giosg **Apps API v5**: organizations create apps, offer them
to partners or to everyone, install them, get a bot *app user* per installation, and
receive signed webhooks about changes in the organizations that installed them.

Authenticate with `Authorization: Token <key>` (or `Bearer <key>`). Collections are
paginated as `{"next", "previous", "results"}`; follow the links. Errors are
`{"detail": ..., "errors"?: {field: [messages]}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.request_sessions = engine_request_sessions(engine)
        app.state.read_connections = engine_read_connections(engine)
        app.state.write_connections = engine_write_connections(engine)
        app.state.arq = (
            await create_pool(
                RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=settings.queue_name
            )
            if settings.redis_url
            else None
        )
        listener = PrincipalListener(app.state.principal_cache, settings)
        listener.start()
        _freeze_startup_heap()
        try:
            yield
        finally:
            await listener.stop()
            if app.state.arq is not None:
                await app.state.arq.aclose()
            await engine.dispose()

    app = create_documented_app(
        title="giosg Apps API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        favicon_url=FAVICON_URL,
        telemetry=None if settings.opentelemetry else TELEMETRY_OFF,
    )
    app.state.settings = settings
    configure_encryption(settings.encryption_keys)
    configure_password_hashing(
        concurrency=settings.password_hash_concurrency, wait_seconds=settings.password_hash_wait_seconds
    )
    install_error_handlers(app, on_overload=count_shed)
    install_param_facts()
    install_planned_solver()
    app.add_middleware(QueueContextMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outermost: a shed request costs no parse, log line or connection.
    app.add_middleware(LoadShedMiddleware, limit=settings.max_requests_in_flight)
    include_flat(app, landing_router)
    include_flat(app, operations_router)
    include_flat(app, public_apps_router)
    include_flat(app, webhooks_router)
    include_flat(app, webhook_log_router)
    include_flat(app, webhook_channels_router)
    include_flat(app, ingest_router)
    include_flat(app, operator_router)
    include_flat(app, installations_router)
    include_flat(app, users_router)
    include_flat(app, app_user_tokens_router)
    include_flat(app, identity_router)
    include_flat(app, install_flow_router)
    include_flat(app, console_router)
    document_channels(app)
    index_routes(app)
    app.state.authenticate_app_token = app_token_authenticator(settings)
    # Off until the lifespan's listener LISTENs (so also in apps served without a lifespan).
    app.state.principal_cache = PrincipalCache(
        size=settings.principal_cache_size, seconds=settings.principal_cache_seconds
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# FastAPI's native telemetry, off: no spans, metrics or log records, and no OTLP exporters set up
# from the environment. The service's own metrics (/metrics) and access log stay.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}


def operation_id(route: APIRoute) -> str:
    """A route's operationId: its name (`list_owned_apps`), the method name in generated clients.

    Route names are unique (tests/api/test_openapi.py checks it); name a route in its decorator
    (`name=...`) when the function's own name would not read as a method of the API.
    """
    return route.name


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, models, schemas, compiled SQL) out of every GC pass.

    The cyclic collector otherwise walks those hundreds of thousands of long-lived objects in
    each full collection (gc.freeze, Python docs; figures in bench/ANALYSIS.md).
    """
    gc.collect()
    gc.freeze()


# Answered by the middleware and the error handlers for any operation, so documented on each.
_BODY_ERRORS = error_responses(413, 415)
_UNAVAILABLE = error_responses(503)
_NO_DATABASE = {"/healthz", "/metrics"}


def _document_common_errors(schema: dict[str, Any], path: str, operation: dict[str, Any]) -> None:
    """413/415 where a body is accepted, 503 where PostgreSQL is used (docs/design.md section 5)."""
    responses = operation.setdefault("responses", {})
    extra: dict[int | str, dict[str, Any]] = {}
    if "requestBody" in operation:
        extra.update(_BODY_ERRORS if path.startswith(("/api/", "/internal/")) else error_responses(413))
    if path not in _NO_DATABASE:
        extra.update(_UNAVAILABLE)
    for code, entry in extra.items():
        if str(code) in responses:
            continue
        responses[str(code)] = {
            "description": entry["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "ErrorResponse", ErrorResponse.model_json_schema()
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema without FastAPI's 422 responses: validation failures are 400s here."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
    )
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
                _document_common_errors(schema, path, operation)
    _restore_webhook_bodies(app, schema)
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    _link_creates(schema)
    app.openapi_schema = schema
    return schema


def _restore_webhook_bodies(app: FastAPI, schema: dict[str, Any]) -> None:
    """The channels' bodies as the catalogue states them: FastAPI drops every null from the
    document, which would leave the examples' null attributes out (and the examples invalid)."""
    for route in app.webhooks.routes:
        if isinstance(route, APIRoute) and route.openapi_extra:
            for method in route.methods or ():
                schema["webhooks"][route.path][method.lower()].update(copy.deepcopy(route.openapi_extra))


def _path_parameters(path: str) -> list[str]:
    return [segment[1:-1] for segment in path.split("/") if segment.startswith("{") and segment.endswith("}")]


def _link_creates(schema: dict[str, Any]) -> None:
    """OpenAPI links from each create (a 201 on a collection) to the created item's operations.

    For `POST /a/{x}/items`, every operation under `/a/{x}/items/{item_id}` whose other path
    parameters the request already has gets a link: `item_id` from the created body's `id`,
    the rest from the request's path. Generated clients and schemathesis' stateful phase
    follow them (create, then GET, PATCH, PUT, DELETE, and the item's own collections).
    """
    paths: dict[str, Any] = schema.get("paths", {})
    for collection, item in paths.items():
        create = item.get("post")
        if create is None or "201" not in create.get("responses", {}):
            continue
        links = _item_links(paths, collection)
        if links:
            # Links a route declares itself (openapi_extra) are kept.
            create["responses"]["201"]["links"] = {**links, **create["responses"]["201"].get("links", {})}


def _item_links(paths: dict[str, Any], collection: str) -> dict[str, Any]:
    """The links of a create on `collection`: one per operation of the created item's paths."""
    known = _path_parameters(collection)
    links: dict[str, Any] = {}
    for path, target_item in paths.items():
        item_parameter = _item_parameter(path, collection, known)
        if item_parameter is None:
            continue
        parameters = {name: f"$request.path.{name}" for name in known}
        parameters[item_parameter] = "$response.body#/id"
        for method, operation in target_item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": dict(parameters),
                "description": f"{method.upper()} {path}, `{item_parameter}` the created `id`.",
            }
    return links


def _item_parameter(path: str, collection: str, known: list[str]) -> str | None:
    """`x` when `path` is `collection/{x}...` and needs no path parameter but `known` and `x`."""
    rest = path.removeprefix(collection + "/")
    if rest == path or not rest.startswith("{"):
        return None
    item_parameter = rest.split("/", 1)[0][1:-1]
    if set(_path_parameters(path)) != {*known, item_parameter}:
        return None
    return item_parameter
