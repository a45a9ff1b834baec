"""JSON-ready views (dicts built from rows) serialized once, byte for byte as their response models.

For hot write paths that answer with a view of what they just wrote: validating the objects into
a model, dumping it, and FastAPI validating it again against `response_model` cost more CPU than
the statements; the views are built straight from the values and serialized with orjson (the
routes keep `response_model` for the OpenAPI schema; tests compare the bytes with the model's).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Response


def _default(value: Any) -> str:
    # asyncpg's UUID subclass is no `uuid.UUID` to orjson; anything else unexpected is an error.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(view: Any) -> bytes:
    """A view as JSON; datetimes as the models write them (`iso_utc`: OPT_UTC_Z, tested)."""
    return orjson.dumps(view, default=_default, option=orjson.OPT_UTC_Z)


def json_response(view: Any, *, status_code: int) -> Response:
    return Response(dumps(view), status_code=status_code, media_type="application/json")
