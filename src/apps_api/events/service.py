"""The transactional outbox: record a change as an event in the change's own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.db import after_commit
from apps_api.kit.queue import current_arq, enqueue_new
from apps_api.models import Event
from apps_api.models.base import utcnow

Action = Literal["added", "changed", "removed"]
_EMITTED = "apps_api.emitted_event_ids"
DISPATCH_JOB = "dispatch_events"


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
    _dispatch_after_commit(session, [event.id])
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
    _dispatch_after_commit(session, ids)
    return ids


def _dispatch_after_commit(session: AsyncSession, event_ids: list[int]) -> None:
    """After commit, one `dispatch_events` job for the transaction's events (the sweeper is the backstop)."""
    session.info.setdefault(_EMITTED, []).extend(event_ids)
    pool = current_arq.get()

    async def _dispatch() -> None:
        # The first callback of the transaction takes every id; the others find none left.
        batch: list[int] = session.info.pop(_EMITTED, [])
        if batch:
            await enqueue_new(pool, DISPATCH_JOB, batch)

    after_commit(session, _dispatch)
