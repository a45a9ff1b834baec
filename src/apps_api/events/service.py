"""The transactional outbox: record a change as an event in the change's own transaction."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.db import after_commit
from apps_api.kit.queue import current_arq, enqueue
from apps_api.models import Event

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
    _dispatch_after_commit(session, event.id)
    return event


def _dispatch_after_commit(session: AsyncSession, event_id: int) -> None:
    """After commit, one `dispatch_events` job for the transaction's events (the sweeper is the backstop)."""
    session.info.setdefault(_EMITTED, []).append(event_id)
    pool = current_arq.get()

    async def _dispatch() -> None:
        # The first callback of the transaction takes every id; the others find none left.
        batch: list[int] = session.info.pop(_EMITTED, [])
        if batch:
            await enqueue(pool, DISPATCH_JOB, batch)

    after_commit(session, _dispatch)
