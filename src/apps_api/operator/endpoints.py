"""`/internal/v1/organizations...`: the operator API (service key; docs/operator-api.md).

Organizations and users are named in paths by the operator's `external_id`, or by our id as
`id:<uuid>`. PUT on an external id creates (201) or updates (200) the whole object, so a sync
job can send the same state every few minutes. The routes are in `organizations` (with partners
and assets) and `users` (with their API tokens), each on an `operator_router()` (prefix, service
key, tag, the errors every operator route may answer).
"""

from __future__ import annotations

from fastapi import APIRouter

from apps_api.operator import organizations, users

router = APIRouter()
router.include_router(organizations.router)
router.include_router(users.router)
