"""One error envelope for every failure: `{"detail": str, "errors"?: {field: [messages]}}`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    """The error envelope of every failure."""

    detail: str = Field(description="What went wrong, for a human.")
    errors: dict[str, list[str]] | None = Field(
        None,
        description=(
            "Present on invalid input: the messages of each invalid field, keyed by the field's name "
            "(`app_user.first_name` for a nested one, `body` for the body as a whole)."
        ),
    )


class APIError(Exception):
    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.errors = errors
        self.headers = headers


class NotFound(APIError):
    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(404, detail)


class Unauthorized(APIError):
    def __init__(self, detail: str = "Authentication credentials were not provided or are invalid.") -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": "Token"})


class Forbidden(APIError):
    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


class PaymentRequired(APIError):
    def __init__(self, detail: str) -> None:
        super().__init__(402, detail)


class Conflict(APIError):
    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


class BadRequest(APIError):
    def __init__(
        self, detail: str = "Invalid request.", *, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(400, detail, errors=errors)

    @classmethod
    def field(cls, field: str, message: str) -> BadRequest:
        return cls("Invalid request.", errors={field: [message]})


_DESCRIPTIONS = {
    400: "The request is malformed or a field is invalid; `errors` names each field.",
    401: "No credentials, or the token is invalid, expired or revoked, or its user was deleted.",
    402: "The organization lacks the feature the change needs (App provider).",
    403: (
        "No active subscription, not the caller's organization, no `settings` permission (for an app:"
        " not within the installation's `allowed_scopes`), or an app on an app-provider route."
    ),
    404: "The resource does not exist for this organization.",
    409: "The resource already exists.",
    413: "The request body is too large.",
    415: "The request has a body that is not `application/json`.",
    503: "PostgreSQL (or Redis) is unreachable, or the service is overloaded; retry after `Retry-After`.",
}


def error_responses(*codes: int, described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error status codes (`described`: a route's own wording)."""
    own = described or {}
    return {
        code: {"model": ErrorResponse, "description": own.get(code, _DESCRIPTIONS[code])} for code in codes
    }


_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def _field_key(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "body"
    where, *rest = loc
    if where == "body":
        return ".".join(str(part) for part in rest) or "body"
    return ".".join(str(part) for part in loc)


# A body of 300,000 wrong items must not answer with 300,000 messages.
MAX_REPORTED_ERRORS = 50


def validation_errors(errors: list[Any]) -> tuple[str, dict[str, list[str]]]:
    by_field: dict[str, list[str]] = {}
    detail = "Invalid request."
    if len(errors) > MAX_REPORTED_ERRORS:
        detail = f"Invalid request: {len(errors)} errors, the first {MAX_REPORTED_ERRORS} are listed."
        errors = errors[:MAX_REPORTED_ERRORS]
    for error in errors:
        loc = tuple(error.get("loc", ()))
        kind = error.get("type", "")
        message = _message(error, kind, loc)
        if kind == "json_invalid":
            detail = "Malformed JSON body."
            loc = ("body",)
        by_field.setdefault(_field_key(loc), []).append(message)
    return detail, by_field


# Pydantic's error types worded our way (the others keep pydantic's message).
_OUR_WORDS = {
    "uuid_parsing": "Must be a valid UUID.",
    "model_attributes_type": "Must be a JSON object.",
    "dict_type": "Must be a JSON object.",
}


def _message(error: Any, kind: str, loc: tuple[int | str, ...]) -> str:
    """One error's message: ours for the kinds we word, else pydantic's without its "Value error, "."""
    if kind == "json_invalid":
        return f"Malformed JSON: {error.get('ctx', {}).get('error', 'cannot be parsed')}."
    if kind == "missing":
        return "A JSON body is required." if loc == ("body",) else "This field is required."
    message = _OUR_WORDS.get(kind) or str(error.get("msg", "Invalid value."))
    return message.removeprefix("Value error, ")


def _json(
    status_code: int, detail: str, errors: dict[str, list[str]] | None = None, **kw: Any
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status_code, **kw)


# SQLSTATEs of a server that is going away or not there yet: connection exceptions (class 08),
# admin/crash shutdown and "cannot connect now" (starting up or shutting down), too many
# connections. These are a 503 (retry soon), never a 500.
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03", "53300")


def _sqlstate(exc: DBAPIError) -> str | None:
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _unavailable_sqlstate(exc: DBAPIError) -> bool:
    state = _sqlstate(exc)
    return state is not None and (state.startswith("08") or state in _UNAVAILABLE_SQLSTATES)


# statement_timeout (query_canceled) and lock_timeout (lock_not_available): the database is
# busy, the request may succeed when retried.
_TIMEOUT_SQLSTATES = frozenset({"57014", "55P03"})


OVERLOAD_RETRY_AFTER_SECONDS = 1
OVERLOADED_DETAIL = "Service temporarily overloaded; retry after `Retry-After` seconds."


def install_error_handlers(app: FastAPI, *, on_overload: Callable[[str], object] = lambda _: None) -> None:
    """The error handlers; `on_overload(reason)` counts the requests shed on a pool or statement timeout."""

    def _overloaded(reason: str) -> JSONResponse:
        on_overload(reason)
        return _json(503, OVERLOADED_DETAIL, headers={"Retry-After": str(OVERLOAD_RETRY_AFTER_SECONDS)})

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return _json(exc.status_code, exc.detail, exc.errors, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = validation_errors(list(exc.errors()))
        return _json(400, detail, errors)

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: ValidationError) -> JSONResponse:
        detail, errors = validation_errors(list(exc.errors()))
        return _json(400, detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Error."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "Not found."
        if exc.status_code == 400 and detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI's own message for bodies json.loads cannot take (bad UTF-8, nesting too deep).
            return _json(
                400,
                "Malformed JSON body.",
                {"body": ["The body is not valid UTF-8 JSON or is nested too deeply."]},
            )
        return _json(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(PoolTimeoutError)
    async def _pool_timeout(request: Request, exc: PoolTimeoutError) -> JSONResponse:
        # Load, not a fault: counted, never logged as an error (docs/operations.md, Running at scale).
        return _overloaded("pool_timeout")

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if _sqlstate(exc) in _TIMEOUT_SQLSTATES:
            return _overloaded("statement_timeout")
        if (
            exc.connection_invalidated
            or isinstance(exc.orig, OSError)
            or "connect" in type(exc.orig).__name__.lower()
            or _unavailable_sqlstate(exc)
        ):
            logger.warning("database unavailable on %s %s", request.method, request.url.path)
            return _json(
                503,
                "Service temporarily unavailable: the database is unreachable.",
                headers={"Retry-After": "5"},
            )
        logger.exception("database error on %s %s", request.method, request.url.path)
        return _json(500, "Internal server error.")

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        logger.warning(
            "dependency unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
        )
        return _json(
            503,
            "Service temporarily unavailable: the database or queue is unreachable.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(500, "Internal server error.")
