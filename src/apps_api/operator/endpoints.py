"""`/internal/v1/organizations...`: the operator API (service key; docs/operator-api.md).

Organizations and users are named in paths by the operator's `external_id`, or by our id as
`id:<uuid>`. PUT on an external id creates (201) or updates (200) the whole object, so a sync
job can send the same state every few minutes. The routes are in `organizations` (with partners
and assets) and `users` (with their API tokens); this router gives them their prefix and key.
"""

from __future__ import annotations

from fastapi import APIRouter

from apps_api.auth.service_keys import ServiceKeyRequired
from apps_api.kit.errors import error_responses
from apps_api.operator import organizations, users

PREFIX = "/internal/v1/organizations"
router = APIRouter(tags=["Internal: operator"], dependencies=[ServiceKeyRequired])
# Every operator route may answer these; a route documents its others itself.
_ERRORS = error_responses(400, 401, 404)
router.include_router(organizations.router, prefix=PREFIX, responses=_ERRORS)
router.include_router(users.router, prefix=PREFIX, responses=_ERRORS)
