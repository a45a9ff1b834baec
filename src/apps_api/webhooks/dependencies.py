"""The webhook loaders, chained after the owned app's (`catalog.dependencies`): 404 for a webhook
or log entry of another app, and for a log entry older than the log's retention.

Writes load ORM objects in the writer's unit of work; GETs load the view's row on the reader's
connection (`read_...`), after the owned-app probe (`ReadOwnedAppId`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.dependencies import ProviderReader, ProviderWriter
from apps_api.catalog.dependencies import OwnedAppDep, ReadOwnedAppId
from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import NotFound
from apps_api.models import Webhook, WebhookLogEntry
from apps_api.webhooks import repository

WebhookId = Annotated[uuid.UUID, Path(description="The ID of the webhook.")]
EntryId = Annotated[uuid.UUID, Path(description="The ID of the webhook log entry.")]
_NO_WEBHOOK = "No webhook found with the given ID."
_NO_ENTRY = "No webhook log entry found with the given ID."


async def kept_since(settings: SettingsDep) -> datetime:
    """The oldest entry a read of the log returns (`APPS_API_WEBHOOK_LOG_RETENTION_DAYS`)."""
    return repository.kept_since(retention_days=settings.webhook_log_retention_days)


KeptSinceDep = Annotated[datetime, Depends(kept_since)]


# --- writes (and the console): ORM objects in the request's unit of work ----------------------


async def load_owned_webhook(*, session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook:
    """A webhook of the app (the caller's owned app, checked before); 404 otherwise."""
    webhook = await repository.get_webhook(session=session, app_id=app_id, webhook_id=webhook_id)
    if webhook is None:
        raise NotFound(_NO_WEBHOOK)
    return webhook


async def load_owned_log_entry(
    *, session: AsyncSession, app_id: uuid.UUID, entry_id: uuid.UUID, since: datetime
) -> WebhookLogEntry:
    """A log entry of the app (the caller's owned app, checked before) within the retention; 404 otherwise."""
    entry = await repository.get_log_entry(session=session, app_id=app_id, entry_id=entry_id, since=since)
    if entry is None:
        raise NotFound(_NO_ENTRY)
    return entry


async def owned_webhook(writer: ProviderWriter, app: OwnedAppDep, webhook_id: WebhookId) -> Webhook:
    """A webhook of the caller's owned app; 404 otherwise."""
    return await load_owned_webhook(session=writer.session, app_id=app.id, webhook_id=webhook_id)


OwnedWebhookDep = Annotated[Webhook, Depends(owned_webhook)]


# The app before the writer: the documented order of the parameters (entry_id, app_id, organization_id).
async def owned_log_entry(
    app: OwnedAppDep, writer: ProviderWriter, entry_id: EntryId, since: KeptSinceDep
) -> WebhookLogEntry:
    """A log entry of the caller's owned app within the log's retention; 404 otherwise."""
    return await load_owned_log_entry(session=writer.session, app_id=app.id, entry_id=entry_id, since=since)


OwnedLogEntryDep = Annotated[WebhookLogEntry, Depends(owned_log_entry)]


# --- GETs: the view's row on the read connection -------------------------------------------------
# The app before the reader (resolved first either way): OpenAPI lists a dependency's own path
# parameters before its sub-dependencies', so this keeps the documented order (app_id, then
# organization_id) of the chain these replaced.


async def read_owned_webhook(app_id: ReadOwnedAppId, reader: ProviderReader, webhook_id: WebhookId) -> Any:
    """`owned_webhook` for a GET: the row of `repository.WEBHOOK` (`schemas.webhook_json`)."""
    rows = await repository.WEBHOOK.fetch(reader.db, app_id=app_id, webhook_id=webhook_id)
    if not rows:
        raise NotFound(_NO_WEBHOOK)
    return rows[0]


ReadOwnedWebhook = Annotated[Any, Depends(read_owned_webhook)]


async def read_owned_log_entry(
    app_id: ReadOwnedAppId, reader: ProviderReader, entry_id: EntryId, since: KeptSinceDep
) -> Any:
    """`owned_log_entry` for a GET: the row of `repository.LOG_ENTRY` (`schemas.log_entry_json`)."""
    rows = await repository.LOG_ENTRY.fetch(reader.db, app_id=app_id, entry_id=entry_id, kept_since=since)
    if not rows:
        raise NotFound(_NO_ENTRY)
    return rows[0]


ReadOwnedLogEntry = Annotated[Any, Depends(read_owned_log_entry)]
