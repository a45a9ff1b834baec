"""The transactional outbox: record a change as an event in the change's own transaction.

Nothing is enqueued here: a trigger on `events` notifies the workers when the transaction
commits (migration 0003, `webhooks.tasks.EventListener`), and the sweeper is the backstop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import Event
from apps_api.models.base import utcnow

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


@dataclass(frozen=True)
class Change:
    """One event of `emit_many()`: what changed, where, as the channel's resource."""

    organization_id: uuid.UUID
    channel: str
    resource_id: uuid.UUID | str
    resource: dict[str, Any]
    required_scope: str | None = None


# Built once, on the table (no ORM bulk machinery); RETURNING in parameter order, so the ids
# come back one per row, all in one round trip.
_EVENTS = cast(Table, Event.__table__)
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)


async def emit_many(
    *,
    session: AsyncSession,
    changes: Sequence[Change],
    action: Action,
    actor_user_id: uuid.UUID | None = None,
) -> list[int]:
    """Write several event rows in one INSERT, in the transaction of the change; returns their ids."""
    if not changes:
        return []
    rows = [
        {
            "organization_id": change.organization_id,
            "channel": change.channel,
            "action": action,
            "resource_id": str(change.resource_id),
            "resource": change.resource,
            "required_scope": change.required_scope,
            "actor_user_id": actor_user_id,
            "created_at": utcnow(),
        }
        for change in changes
    ]
    ids = list((await session.scalars(_INSERT_EVENTS, rows)).all())
    return ids
