"""`/console/`: the developer console's pages (server-rendered, not in OpenAPI; docs/console.md).

One router a page family (`console/pages/`), included here in order (`/apps/new` before
`/apps/{app_id}`). Every page signs the viewer in, checks a POST's CSRF token and runs the API's
access checks, then loads resources with the API's own loaders (`console/dependencies.py`), and
changes them with the API's own services. Forms answer with a redirect (Post/Redirect/Get), or
with the form again and the API's messages.
"""

from __future__ import annotations

from fastapi import APIRouter

from apps_api.console.pages import apps, deliveries, installations, installed, session, shares, webhooks

router = APIRouter(include_in_schema=False)
for page_router in (
    session.router,
    apps.router,
    webhooks.router,
    deliveries.router,
    installations.router,
    shares.router,
    installed.router,
):
    router.include_router(page_router)
