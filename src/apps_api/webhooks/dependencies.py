"""The webhook loaders, chained after the owned app's (`catalog.dependencies`): 404 for a webhook
or log entry of another app, and for a log entry older than the log's retention."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path

from apps_api.catalog.dependencies import OwnedAppDep
from apps_api.kit.db import SessionDep
from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import NotFound
from apps_api.models import Webhook, WebhookLogEntry
from apps_api.webhooks import repository

WebhookId = Annotated[uuid.UUID, Path(description="The ID of the webhook.")]
EntryId = Annotated[uuid.UUID, Path(description="The ID of the webhook log entry.")]


async def owned_webhook(session: SessionDep, app: OwnedAppDep, webhook_id: WebhookId) -> Webhook:
    """A webhook of the caller's owned app; 404 otherwise."""
    webhook = await repository.get_webhook(session=session, app_id=app.id, webhook_id=webhook_id)
    if webhook is None:
        raise NotFound("No webhook found with the given ID.")
    return webhook


OwnedWebhookDep = Annotated[Webhook, Depends(owned_webhook)]


async def kept_since(settings: SettingsDep) -> datetime:
    """The oldest entry a read of the log returns (`APPS_API_WEBHOOK_LOG_RETENTION_DAYS`)."""
    return repository.kept_since(retention_days=settings.webhook_log_retention_days)


KeptSinceDep = Annotated[datetime, Depends(kept_since)]


async def owned_log_entry(
    session: SessionDep, app: OwnedAppDep, entry_id: EntryId, since: KeptSinceDep
) -> WebhookLogEntry:
    """A log entry of the caller's owned app within the log's retention; 404 otherwise."""
    entry = await repository.get_log_entry(session=session, app_id=app.id, entry_id=entry_id, since=since)
    if entry is None:
        raise NotFound("No webhook log entry found with the given ID.")
    return entry


OwnedLogEntryDep = Annotated[WebhookLogEntry, Depends(owned_log_entry)]
