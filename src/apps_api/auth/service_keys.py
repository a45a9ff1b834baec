"""The internal API's credential: `Authorization: Bearer <service key>` (ingestion, operator API).

Defined once, so every `/internal/v1` route accepts the same keys: any of APPS_API_SERVICE_KEYS
(several while a key rotates) or the former APPS_API_INGEST_SERVICE_KEY.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import NotFound, Unauthorized
from apps_api.kit.routing import documents_security
from apps_api.kit.security import constant_time_equals

_service_key_header = APIKeyHeader(
    name="Authorization",
    scheme_name="ServiceKey",
    auto_error=False,
    description="`Bearer <key>`, one of `APPS_API_SERVICE_KEYS` (or `APPS_API_INGEST_SERVICE_KEY`).",
)


def key_matches(presented: str, accepted: tuple[str, ...]) -> bool:
    """Whether `presented` is one of `accepted`, comparing with every key in constant time."""
    matched = False
    for key in accepted:
        # No early exit: the time taken does not tell which key (or how many) there are.
        matched |= constant_time_equals(presented, key)
    return matched


# Read from the request here and documented for OpenAPI only, as auth.dependencies does: the
# scheme as a dependency of its own cost a dependency level per request.
@documents_security(_service_key_header)
async def require_service_key(request: Request, settings: SettingsDep) -> None:
    """404 when no service key is configured (the internal API is off); 401 without a valid one."""
    accepted = settings.accepted_service_keys
    if not accepted:
        raise NotFound("The internal API is not enabled (set APPS_API_SERVICE_KEYS).")
    authorization = request.headers.get("authorization")
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not key_matches(credentials.strip(), accepted):
        raise Unauthorized("A valid service key is required.")


ServiceKeyRequired = Depends(require_service_key)
