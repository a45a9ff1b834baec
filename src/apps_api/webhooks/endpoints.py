"""Webhooks and webhook log entries of an owned app; the internal event ingestion endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.dependencies import ProviderReader, ProviderWriter, Reader, SettingsReader
from apps_api.auth.service_keys import ServiceKeyRequired
from apps_api.catalog.dependencies import AppId, OwnedAppDep, require_owned_app
from apps_api.kit.db import SessionDep
from apps_api.kit.deps import SettingsDep, app_settings
from apps_api.kit.errors import error_responses
from apps_api.kit.pagination import (
    KeysetQuery,
    Page,
    PageParams,
    PageParamsDep,
    json_page,
    keyset_page,
    paginate_items,
)
from apps_api.kit.schemas import InputDateTime
from apps_api.kit.views import json_response
from apps_api.models import WebhookLogEntry
from apps_api.webhooks import catalogue, channel_registry, repository, schemas, service
from apps_api.webhooks.channel_schemas import ChannelRegistration, IngestBatch, IngestResult, WebhookChannel
from apps_api.webhooks.dependencies import (
    KeptSinceDep,
    OwnedLogEntryDep,
    OwnedWebhookDep,
    ReadOwnedLogEntry,
    ReadOwnedWebhook,
)

router = APIRouter(prefix="/api/v5/orgs/{organization_id}/owned_apps/{app_id}", tags=["Webhooks"])
log_router = APIRouter(
    prefix="/api/v5/orgs/{organization_id}/owned_apps/{app_id}",
    tags=["Webhook log entries"],
)
internal_router = APIRouter(
    prefix="/internal/v1", tags=["Internal: event ingestion"], dependencies=[ServiceKeyRequired]
)
channels_router = APIRouter(prefix="/api/v5", tags=["Webhook channels"])


# --- webhooks --------------------------------------------------------------------------------

WEBHOOK = "/webhooks/{webhook_id}"
# Parameters name the app (or the loader that takes it) before the reader or writer: OpenAPI lists
# a dependency's own path parameters before its sub-dependencies', and the documented order is
# the one of the chain these replaced. The caller is identified first either way.
# What every route of an owned app's webhooks and log may answer (writes to one may add a 409).
OWNED_APP_ERRORS = error_responses(400, 401, 403, 404)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409)


@router.get(
    "/webhooks",
    response_model=Page[schemas.Webhook],
    summary="List the webhooks of an owned app",
    responses=OWNED_APP_ERRORS,
)
async def list_webhooks(
    request: Request, app_id: AppId, reader: ProviderReader, params: PageParamsDep
) -> Response:
    """The app's webhooks, newest first."""
    return await _owned_page(
        reader,
        repository.WEBHOOKS_PAGE,
        schemas.webhook_json,
        conditions=repository.OWNED_WEBHOOKS_CONDITIONS,
        shape="owned",
        params=params,
        request=request,
        app_id=app_id,
    )


async def _owned_page(
    reader: Reader,
    query: KeysetQuery,
    view: Callable[[Any], dict[str, Any]],
    *,
    conditions: Sequence[ColumnElement[bool]],
    shape: Hashable,
    params: PageParams,
    request: Request,
    app_id: uuid.UUID,
    **values: Any,
) -> Response:
    """A page of an owned app's rows in one round trip: the ownership is a condition of the page's
    statement (`catalog.repository.owned_by_caller`), probed apart only when the page is empty."""
    organization_id = reader.principal.organization_id
    rows, next_url, previous_url = await keyset_page(
        reader.db,
        query,
        conditions=conditions,
        shape=shape,
        params=params,
        request=request,
        app_id=app_id,
        organization_id=organization_id,
        **values,
    )
    if not rows:
        await require_owned_app(db=reader.db, organization_id=organization_id, app_id=app_id)
    return json_page(next_url, previous_url, [view(row) for row in rows])


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook for an owned app",
    responses=OWNED_APP_ERRORS,
)
async def create_webhook(
    writer: ProviderWriter, app: OwnedAppDep, body: schemas.WebhookCreate
) -> schemas.Webhook:
    webhook = await service.create_webhook(
        session=writer.session, app=app, actor=writer.principal.user, data=body
    )
    return schemas.Webhook.model_validate(webhook)


@router.get(
    WEBHOOK,
    response_model=schemas.Webhook,
    summary="Retrieve a webhook of an owned app",
    responses=OWNED_APP_ERRORS,
)
async def get_webhook(webhook: ReadOwnedWebhook) -> Response:
    # The list's compiled view of one row (response_model documents it).
    return json_response(schemas.webhook_json(webhook), status_code=200)


@router.put(WEBHOOK, summary="Replace a webhook of an owned app", responses=OWNED_APP_ERRORS)
async def replace_webhook(
    writer: ProviderWriter, app: OwnedAppDep, webhook: OwnedWebhookDep, body: schemas.WebhookCreate
) -> schemas.Webhook:
    """`endpoint_url` is required; omitted `channel_subscriptions` become an empty list."""
    # A PUT is a PATCH of every attribute.
    return await update_webhook(writer, app, webhook, body.as_update())


@router.patch(WEBHOOK, summary="Update a webhook of an owned app", responses=OWNED_APP_ERRORS)
async def update_webhook(
    writer: ProviderWriter, app: OwnedAppDep, webhook: OwnedWebhookDep, body: schemas.WebhookUpdate
) -> schemas.Webhook:
    """Only the attributes given change; `channel_subscriptions`, when given, replaces the list."""
    updated = await service.update_webhook(
        session=writer.session, app=app, webhook=webhook, actor=writer.principal.user, changes=body
    )
    return schemas.Webhook.model_validate(updated)


@router.post(
    WEBHOOK + "/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test notification to a webhook",
    responses=WRITE_ERRORS,
)
async def test_webhook(
    writer: ProviderWriter,
    settings: SettingsDep,
    webhook: OwnedWebhookDep,
    since: KeptSinceDep,
    # Optional, and documented as the schema itself (not "the schema or null").
    body: schemas.WebhookTestRequest = Body(None),
) -> schemas.WebhookLogEntry:
    """202 with the `pending` log entry of a signed notification with action `test`.

    Its body is `{"channel": <the webhook's path>, "action": "test", "resource_id": <webhook id>,
    "resource": <the webhook>}`; with a request body `{"channel": <a catalogue pattern>, "action"?}`,
    it is that channel's example body instead (the webhook's own organization and app in it; 400 for
    a channel or action not in the catalogue). It is logged and retried like every notification. 409
    while the webhook is disabled.
    """
    entry = await service.send_test_event(
        session=writer.session, webhook=webhook, max_attempts=settings.max_delivery_attempts, example=body
    )
    return await _log_entry_view(writer.session, entry, since)


@router.post(
    WEBHOOK + "/recover",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Recover: requeue a webhook's failed notifications since a time",
    responses=WRITE_ERRORS,
)
async def recover_webhook(
    writer: ProviderWriter,
    settings: SettingsDep,
    webhook: OwnedWebhookDep,
    body: schemas.RecoverRequest,
) -> schemas.RecoverResult:
    """One new attempt (same `webhook-id`) of each delivery of the webhook that ended `failed` since `since`.

    400 when `since` is further back than the log's retention; 409 while the webhook is disabled.
    """
    requeued = await service.recover(
        session=writer.session,
        webhook=webhook,
        since=body.since,
        retention_days=settings.webhook_log_retention_days,
    )
    return schemas.RecoverResult(requeued=requeued)


@router.delete(
    WEBHOOK,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a webhook and its channel subscriptions",
    responses=OWNED_APP_ERRORS,
)
async def delete_webhook(writer: ProviderWriter, app: OwnedAppDep, webhook: OwnedWebhookDep) -> Response:
    """Its undelivered notifications end `failed` ("Webhook deleted"); its log entries stay readable."""
    await service.delete_webhook(
        session=writer.session, app=app, webhook=webhook, actor=writer.principal.user
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _log_entry_view(
    session: AsyncSession, entry: WebhookLogEntry, since: datetime
) -> schemas.WebhookLogEntry:
    """The view of an entry this request wrote, read back with its next attempt time."""
    loaded = await repository.get_log_entry(
        session=session, app_id=entry.app_id, entry_id=entry.id, since=since
    )
    return schemas.WebhookLogEntry.model_validate(loaded)


async def _log_entries_page(
    reader: Reader,
    *,
    request: Request,
    params: PageParams,
    app_id: uuid.UUID,
    since: datetime,
    filters: dict[str, Any],
) -> Response:
    # A hot list: a compiled statement per filter shape, rows straight to JSON (response_model
    # documents it).
    shape = {name: value is not None for name, value in filters.items()}
    return await _owned_page(
        reader,
        repository.LOG_ENTRIES_PAGE,
        schemas.log_entry_json,
        conditions=repository.log_entry_conditions(**shape, owned=True),
        shape=("owned", *shape.values()),
        params=params,
        request=request,
        app_id=app_id,
        kept_since=since,
        **filters,
    )


@log_router.get(
    "/webhook_log_entries",
    response_model=Page[schemas.WebhookLogEntry],
    summary="List webhook log entries of an owned app",
    name="list_webhook_log_entries",
    responses=OWNED_APP_ERRORS,
)
async def list_log_entries(
    request: Request,
    app_id: AppId,
    reader: ProviderReader,
    params: PageParamsDep,
    webhook_id: Annotated[uuid.UUID | None, Query(description="Only this webhook's attempts.")] = None,
    status_: Annotated[
        schemas.LogStatus | None, Query(alias="status", description="Only attempts with this status.")
    ] = None,
    created_at_gte: Annotated[
        InputDateTime | None, Query(description="Created at or after (ISO-8601; no offset means UTC).")
    ] = None,
    created_at_lte: Annotated[
        InputDateTime | None, Query(description="Created at or before (ISO-8601; no offset means UTC).")
    ] = None,
    message_id: Annotated[
        str | None,
        Query(max_length=64, description="Only the attempts of the message with this `webhook-id` header."),
    ] = None,
    resource_id: Annotated[
        str | None, Query(max_length=200, description="Only attempts about this resource.")
    ] = None,
    channel: Annotated[
        str | None, Query(max_length=500, description="Only attempts on this concrete channel.")
    ] = None,
    action: Annotated[schemas.LogAction | None, Query(description="Only attempts of this action.")] = None,
) -> Response:
    """One entry per HTTP attempt (webhooks; server-sent triggers with `webhook_id` null), newest first.

    Entries are kept for `APPS_API_WEBHOOK_LOG_RETENTION_DAYS` (7) days, also after their webhook
    is deleted (filter by its `webhook_id`), and never returned once older.
    """
    filters = {
        "webhook_id": webhook_id,
        "status": status_,
        "created_at_gte": created_at_gte,
        "created_at_lte": created_at_lte,
        "message_id": message_id,
        "resource_id": resource_id,
        "channel": channel,
        "action": action,
    }
    # The retention bound from the settings here, not from a dependency: a dependency level each.
    since = repository.kept_since(retention_days=app_settings(request).webhook_log_retention_days)
    return await _log_entries_page(
        reader, request=request, params=params, app_id=app_id, since=since, filters=filters
    )


@log_router.get(
    "/webhook_log_entries/{entry_id}",
    response_model=schemas.WebhookLogEntry,
    summary="Retrieve a webhook log entry",
    name="get_webhook_log_entry",
    responses=OWNED_APP_ERRORS,
)
async def get_log_entry(entry: ReadOwnedLogEntry) -> Response:
    # The list's compiled view of one row (response_model documents it).
    return json_response(schemas.log_entry_json(entry), status_code=200)


@log_router.post(
    "/webhook_log_entries/{entry_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Redeliver: schedule a new attempt of the entry's delivery",
    name="redeliver_webhook_log_entry",
    responses=WRITE_ERRORS,
)
async def redeliver(
    entry: OwnedLogEntryDep, writer: ProviderWriter, since: KeptSinceDep
) -> schemas.WebhookLogEntry:
    """202 with the `pending` log entry of the scheduled attempt (same `webhook-id` as the original),
    sent to the webhook's URL as it is now.

    409 while an attempt of that delivery is in flight, and when its webhook is disabled or deleted.
    """
    pending = await service.redeliver(session=writer.session, entry=entry)
    return await _log_entry_view(writer.session, pending, since)


@channels_router.get(
    "/webhook_channels",
    summary="List the channel families webhooks can subscribe to",
    responses=error_responses(400, 401, 403),
)
async def list_webhook_channels(
    request: Request, reader: SettingsReader, params: PageParamsDep
) -> Page[WebhookChannel]:
    """The channel catalogue: each family's pattern, actions, the scope an installation needs, the
    JSON Schema of `resource` per action and example bodies; this service's own families and those
    the operator registered for other services' events. Newest first (the service's own last)."""
    entries = await channel_registry.catalogue(db=reader.db)
    page, next_url, previous_url = await paginate_items(
        entries, position=catalogue.CatalogueEntry.position, params=params, request=request
    )
    return Page[WebhookChannel](
        next=next_url, previous=previous_url, results=[channel_registry.entry_view(entry) for entry in page]
    )


@internal_router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish events of other platform services",
    responses=error_responses(400, 401, 404, 413),
)
async def ingest_events(session: SessionDep, body: IngestBatch) -> IngestResult:
    """Record up to 500 events in one transaction; they are matched and delivered to webhooks after commit.

    Authenticated with `Authorization: Bearer <service key>` (one of `APPS_API_SERVICE_KEYS`, or
    `APPS_API_INGEST_SERVICE_KEY`); 404 when no key is configured (the internal API is off).
    Each event: `organization_id`, concrete `channel` (e.g. `/api/v5/orgs/<id>/chats`), `action`
    (`added`, `changed`, `removed`), `resource_id`, `resource`, and `required_scope` (required),
    the scope an installation's `allowed_scopes` must include for it to be notified.
    """
    ids = await service.ingest_events(session=session, batch=body)
    return IngestResult(accepted=len(ids), event_ids=ids)


@internal_router.post(
    "/webhook_channels",
    summary="Register a channel family other services publish",
    responses=error_responses(400, 401, 404, 413),
)
async def register_webhook_channel(session: SessionDep, body: ChannelRegistration) -> WebhookChannel:
    """Register a family (or replace the one with the same `pattern`): its scope, actions and the JSON
    Schema of `resource`. Ingested events whose channel matches it are then checked against it (400
    naming the field), and the channel catalogue lists it. Authenticated like `POST /internal/v1/events`.
    """
    entry = await channel_registry.register_channel(session=session, registration=body)
    return channel_registry.entry_view(entry)
