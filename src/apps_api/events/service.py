"""The transactional outbox: record a change as an event in the change's own transaction."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import Event

Action = Literal["added", "changed", "removed"]


async def emit(
    *,
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel: str,
    action: Action,
    resource_id: uuid.UUID | str,
    resource: dict[str, Any],
    required_scope: str | None = None,
    actor_user_id: uuid.UUID | None = None,
) -> Event:
    """Write one event row; it is fanned out to webhooks after the transaction commits."""
    event = Event(
        organization_id=organization_id,
        channel=channel,
        action=action,
        resource_id=str(resource_id),
        resource=resource,
        required_scope=required_scope,
        actor_user_id=actor_user_id,
    )
    session.add(event)
    await session.flush()
    return event
