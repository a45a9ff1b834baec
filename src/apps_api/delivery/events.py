"""The transactional outbox: record a change as an event in the change's own transaction.

Nothing is enqueued here: a trigger on `events` notifies the workers when the transaction
commits (migration 0003, `delivery.listener.EventListener`), and the sweeper is the backstop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Insert, Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.driver import CompiledStatement
from apps_api.kit.views import dumps
from apps_api.models import Event
from apps_api.models.base import utcnow

Action = Literal["added", "changed", "removed"]
# The scope an installation needs to hear each of the service's own channels (docs/design.md
# section 8): installations, installed apps, owned apps and webhooks are settings, users are
# users. The owner's installations channel carries `settings` too, for other apps installed in
# the owner's organization; the app whose installations they are hears it without (matching.py).
SETTINGS_SCOPE = "settings"
USERS_SCOPE = "users"


async def emit(
    *,
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel: str,
    action: Action,
    resource_id: uuid.UUID | str,
    resource: dict[str, Any],
    required_scope: str,
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
    required_scope: str


# A multi-row INSERT on the table, run straight on the session's connection (kit/driver.py): one
# round trip and no ORM or Core execution machinery. Its parameters are named per row.
_EVENTS = cast(Table, Event.__table__)
_EVENT_COLUMNS = (
    "organization_id",
    "channel",
    "action",
    "resource_id",
    "resource",
    "required_scope",
    "actor_user_id",
    "created_at",
)
_INSERT_EVENTS: dict[int, CompiledStatement] = {}


def insert_events(count: int) -> Insert:
    """The INSERT of `count` events, with the parameters `event_parameters()` gives (for composing)."""
    rows: list[dict[str, Any]] = [
        {column: bindparam(f"{column}_{row}") for column in _EVENT_COLUMNS} for row in range(count)
    ]
    return insert(_EVENTS).values(rows)


def event_parameters(
    *, changes: Sequence[Change], action: Action, actor_user_id: uuid.UUID | None
) -> dict[str, Any]:
    """The parameters of `insert_events(len(changes))`."""
    values: dict[str, Any] = {}
    for row, change in enumerate(changes):
        values.update(
            {
                f"organization_id_{row}": change.organization_id,
                f"channel_{row}": change.channel,
                f"action_{row}": action,
                f"resource_id_{row}": str(change.resource_id),
                # JSONB parameters are JSON text on the driver connection.
                f"resource_{row}": dumps(change.resource).decode(),
                f"required_scope_{row}": change.required_scope,
                f"actor_user_id_{row}": actor_user_id,
                f"created_at_{row}": utcnow(),
            }
        )
    return values


async def emit_many(
    *,
    session: AsyncSession,
    changes: Sequence[Change],
    action: Action,
    actor_user_id: uuid.UUID | None = None,
) -> None:
    """Write several event rows in one INSERT, in the transaction of the change."""
    if not changes:
        return
    statement = _INSERT_EVENTS.get(len(changes))
    if statement is None:
        statement = _INSERT_EVENTS[len(changes)] = CompiledStatement(insert_events(len(changes)))
    await statement.fetch(
        session, **event_parameters(changes=changes, action=action, actor_user_id=actor_user_id)
    )
