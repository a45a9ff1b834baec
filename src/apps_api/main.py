"""The ASGI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from apps_api import __version__
from apps_api.app_user_tokens.endpoints import router as app_user_tokens_router
from apps_api.apps.endpoints import router as public_apps_router
from apps_api.auth.app_tokens import app_token_authenticator
from apps_api.console.endpoints import router as console_router
from apps_api.identity.endpoints import router as identity_router
from apps_api.installations.endpoints import router as installations_router
from apps_api.installflow.endpoints import router as install_flow_router
from apps_api.kit.db import create_engine, engine_request_sessions
from apps_api.kit.errors import ErrorResponse, error_responses, install_error_handlers
from apps_api.kit.queue import QueueContextMiddleware
from apps_api.observability.endpoints import router as operations_router
from apps_api.observability.middleware import RequestContextMiddleware
from apps_api.settings import Settings, get_settings
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
        app.state.arq = (
            await create_pool(
                RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=settings.queue_name
            )
            if settings.redis_url
            else None
        )
        _freeze_startup_heap()
        try:
            yield
        finally:
            if app.state.arq is not None:
                await app.state.arq.aclose()
            await engine.dispose()

    app = FastAPI(
        title="giosg Apps API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(QueueContextMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(operations_router)
    app.include_router(public_apps_router)
    app.include_router(webhooks_router)
    app.include_router(webhook_log_router)
    app.include_router(ingest_router)
    app.include_router(installations_router)
    app.include_router(app_user_tokens_router)
    app.include_router(identity_router)
    app.include_router(install_flow_router)
    app.include_router(console_router)
    app.state.authenticate_app_token = app_token_authenticator(settings)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, models, schemas, compiled SQL) out of every GC pass.

    The cyclic collector otherwise walks those hundreds of thousands of long-lived objects in
    each full collection: ~7 % of a read's CPU in a profile (gc.freeze, Python docs).
    """
    gc.collect()
    gc.freeze()


# Answered by the middleware and the error handlers for any operation, so documented on each.
_BODY_ERRORS = error_responses(413, 415)
_UNAVAILABLE = error_responses(503)
_NO_DATABASE = {"/healthz", "/metrics"}


def _document_common_errors(schema: dict[str, Any], path: str, operation: dict[str, Any]) -> None:
    """413/415 where a body is accepted, 503 where PostgreSQL is used (DESIGN.md section 5)."""
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
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
                _document_common_errors(schema, path, operation)
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
