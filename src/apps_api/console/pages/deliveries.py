"""An app's deliveries (the webhook log): the API's log entries page with its filters, one
attempt with every attempt of its delivery, and redelivery through `webhooks.service.redeliver`."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from apps_api.console import queries
from apps_api.console.dependencies import ConsoleApp, ConsoleLogEntry, ProviderViewer
from apps_api.console.filters import LOG_ACTIONS, DeliveryFiltersDep
from apps_api.console.listing import ListPage, PagerDep
from apps_api.console.render import app_nav, notice, page, page_router, redirect
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import Conflict
from apps_api.models.webhook_log_entry import LOG_STATUSES
from apps_api.web.routes import PageError
from apps_api.webhooks import repository as webhooks_repository
from apps_api.webhooks import schemas as webhook_schemas
from apps_api.webhooks import service as webhooks_service
from apps_api.webhooks.dependencies import KeptSinceDep

router = page_router()


@router.get("/apps/{app_id}/deliveries")
async def deliveries(
    request: Request,
    session: SessionDep,
    viewer: ProviderViewer,
    app: ConsoleApp,
    pager: PagerDep,
    filters: DeliveryFiltersDep,
    since: KeptSinceDep,
) -> Response:
    """The API's log entries page with its filters, newest first, paginated by its cursors.

    `q` finds a message by its `webhook-id` (`msg_…`), anything else is a resource ID.
    """
    entries = ListPage([], None, None)
    if not filters.errors:
        shape = {name: value is not None for name, value in filters.values.items()}
        entries = await pager.keyset(
            session,
            webhooks_repository.LOG_ENTRIES_PAGE,
            conditions=webhooks_repository.log_entry_conditions(**shape),
            shape=tuple(shape.values()),
            app_id=app.id,
            kept_since=since,
            **filters.values,
        )
    return page(
        request,
        "console/deliveries.html",
        status_code=400 if filters.errors else 200,
        viewer=viewer,
        title="Deliveries",
        section="apps",
        app=app_nav(app, "deliveries"),
        entries=[webhook_schemas.log_entry_json(row) for row in entries.rows],
        webhooks=await queries.webhook_choices(session, app_id=app.id),
        statuses=LOG_STATUSES,
        actions=LOG_ACTIONS,
        filters=filters.typed,
        errors=filters.errors,
        notice=notice(request),
        **entries.links,
    )


@router.get("/apps/{app_id}/deliveries/{entry_id}")
async def delivery_detail(
    request: Request,
    session: SessionDep,
    viewer: ProviderViewer,
    app: ConsoleApp,
    entry: ConsoleLogEntry,
    since: KeptSinceDep,
) -> Response:
    """One attempt (request and response) and every attempt of the same delivery."""
    return page(
        request,
        "console/delivery.html",
        viewer=viewer,
        title=f"Delivery attempt {entry.retry_index + 1}",
        section="apps",
        app=app_nav(app, "deliveries"),
        entry=webhook_schemas.WebhookLogEntry.model_validate(entry).model_dump(),
        delivery=await queries.delivery(session, delivery_id=entry.delivery_id),
        attempts=await queries.delivery_attempts(
            session, app_id=app.id, delivery_id=entry.delivery_id, since=since
        ),
        notice=notice(request),
    )


@router.post("/apps/{app_id}/deliveries/{entry_id}/redeliver")
async def delivery_redeliver(session: SessionDep, app: ConsoleApp, entry: ConsoleLogEntry) -> Response:
    """`POST /webhook_log_entries/{id}/redeliver` through `webhooks.service.redeliver`."""
    try:
        pending = await webhooks_service.redeliver(session=session, entry=entry)
    except Conflict as exc:
        raise PageError(409, exc.detail, title="Attempt in progress") from None
    return redirect(f"/console/apps/{app.id}/deliveries/{pending.id}", "redelivered")
