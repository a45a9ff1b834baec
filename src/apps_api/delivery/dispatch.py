"""The dispatcher: turns committed events into delivery rows, once each (transactional outbox)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from apps_api.delivery import columns
from apps_api.delivery.matching import (
    AppMatcher,
    EventView,
    InstallationView,
    Match,
    Snapshot,
    Subscription,
    installations_channel_app,
    match_event,
)
from apps_api.delivery.outbox import delivery_rows
from apps_api.models.base import utcnow

logger = logging.getLogger(__name__)

# The dispatcher runs on the driver connection (kit/driver.py): a fan-out writes thousands of
# rows. One statement writes them all and marks the events: the deliveries (one array per
# column of `_WRITE_COLUMNS`), the pending log entry of each first attempt (from the inserted
# rows), the events' `dispatched_at`. Then $N+1 the events, $N+2 now.
_WRITE_COLUMNS = (
    "id",
    "kind",
    "app_id",
    "organization_id",
    "webhook_id",
    "event_id",
    "installation_id",
    "target_organization_id",
    "app_user_id",
    "method",
    "endpoint_url",
    "endpoint_host",
    "channel",
    "action",
    "resource_id",
    "payload",
    "message_id",
    "max_attempts",
    "current_log_entry_id",
)
_EVENTS_PARAMETER = len(_WRITE_COLUMNS) + 1
_NOW = f"${len(_WRITE_COLUMNS) + 2}"
_WRITE = f"""
WITH deliveries AS (
    INSERT INTO outbound_deliveries ({columns.names(_WRITE_COLUMNS)},
        status, attempt_count, next_attempt_at, created_at, updated_at)
    SELECT {columns.values(columns.DELIVERIES, _WRITE_COLUMNS)}, 'pending', 0, {_NOW}, {_NOW}, {_NOW}
    FROM {columns.unnest(columns.DELIVERIES, _WRITE_COLUMNS)}
    RETURNING id, current_log_entry_id, {columns.names(columns.ENTRY_COPIES)}
), entries AS (
    INSERT INTO webhook_log_entries (id, delivery_id, {columns.names(columns.ENTRY_COPIES)},
        status, retry_index, scheduled_at, created_at, updated_at)
    SELECT current_log_entry_id, id, {columns.names(columns.ENTRY_COPIES)},
        'pending', 0, {_NOW}, {_NOW}, {_NOW}
    FROM deliveries
)
UPDATE events SET dispatched_at = {_NOW} WHERE id = ANY(${_EVENTS_PARAMETER}::bigint[])
"""  # noqa: S608 - names from the table metadata
_TAKE_EVENTS = """
SELECT id, organization_id, channel, action, resource_id, resource, required_scope, xact_id, snapshot
FROM events
WHERE dispatched_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_MATCHER_ROWS = """
SELECT s.app_id, s.webhook_id, s.channel_pattern, s.is_additions_subscribed, s.is_changes_subscribed,
       s.is_removals_subscribed, w.endpoint_url
FROM webhook_channel_subscriptions AS s JOIN webhooks AS w ON w.id = s.webhook_id
WHERE s.app_id = ANY($1::uuid[]) AND NOT w.is_disabled
"""
# The installations of the events' organizations, and those removed by a transaction that a
# snapshot of the batch may not see yet ($2: the batch's oldest snapshot xmin; a removal
# before it is visible to every event of the batch).
_INSTALLATIONS = """
SELECT i.id, i.app_id, i.organization_id, i.app_user_id, i.allowed_scopes, a.owned_by_organization_id,
    i.installed_xact_id, NULL::bigint AS removed_xact_id
FROM app_installations AS i JOIN apps AS a ON a.id = i.app_id
WHERE i.organization_id = ANY($1::uuid[])
UNION ALL
SELECT r.id, r.app_id, r.organization_id, r.app_user_id, r.allowed_scopes, r.app_owner_id,
    r.installed_xact_id, r.removed_xact_id
FROM app_installation_removals AS r
WHERE r.organization_id = ANY($1::uuid[]) AND r.removed_xact_id >= $2
"""
_OWNERS = "SELECT id, owned_by_organization_id FROM apps WHERE id = ANY($1::uuid[])"


@dataclass(frozen=True)
class EventRow:
    """What the dispatcher reads of an event."""

    id: int
    organization_id: uuid.UUID
    channel: str
    action: str
    resource_id: str
    resource: Any
    required_scope: str | None
    xact_id: int | None = None
    snapshot: str | None = None

    def view(self) -> EventView:
        snapshot = None
        if self.xact_id is not None and self.snapshot is not None:
            snapshot = Snapshot.parse(self.xact_id, self.snapshot)
        return EventView(self.organization_id, self.channel, self.action, self.required_scope, snapshot)


# Notified by a trigger when events commit (migration 0003); the worker listens (listener.EventListener).
EVENTS_CHANNEL = "apps_api_events"
# A webhook change takes effect for events committed one second later at the latest.
INDEX_MAX_AGE_SECONDS = 1.0
BATCH_SIZE = 200


class SubscriptionIndex:
    """Per-process cache of compiled per-app matchers, each at most one second old."""

    def __init__(self, max_age: float = INDEX_MAX_AGE_SECONDS) -> None:
        self.max_age = max_age
        self._entries: dict[uuid.UUID, tuple[float, AppMatcher]] = {}

    async def matchers(
        self, connection: asyncpg.Connection, app_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, AppMatcher]:
        """Fresh matchers of these apps; the stale and missing ones are loaded in one query."""
        now = time.monotonic()
        wanted = set(app_ids)
        result: dict[uuid.UUID, AppMatcher] = {}
        stale = []
        for app_id in wanted:
            entry = self._entries.get(app_id)
            if entry is not None and now - entry[0] <= self.max_age:
                result[app_id] = entry[1]
            else:
                stale.append(app_id)
        if stale:
            loaded = await load_matchers(connection, stale)
            for app_id in stale:
                matcher = loaded.get(app_id) or AppMatcher()
                self._entries[app_id] = (now, matcher)
                result[app_id] = matcher
            if len(self._entries) > 50_000:
                self._evict(now)
        return result

    def _evict(self, now: float) -> None:
        for app_id in [key for key, (at, _) in self._entries.items() if now - at > self.max_age]:
            del self._entries[app_id]


async def load_matchers(
    connection: asyncpg.Connection, app_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AppMatcher]:
    matchers: dict[uuid.UUID, AppMatcher] = {}
    for app_id, webhook_id, pattern, additions, changes, removals, endpoint_url in await connection.fetch(
        _MATCHER_ROWS, list(app_ids)
    ):
        matcher = matchers.setdefault(app_id, AppMatcher())
        matcher.add(Subscription(webhook_id, pattern, additions, changes, removals))
        matcher.endpoints[webhook_id] = endpoint_url
    return matchers


async def _installations(
    connection: asyncpg.Connection, events: Sequence[EventView]
) -> dict[uuid.UUID, list[InstallationView]]:
    """The installations of the events' organizations, with the removals their snapshots may predate."""
    by_org: dict[uuid.UUID, list[InstallationView]] = {}
    snapshots = [event.snapshot for event in events if event.snapshot is not None]
    # Events without a snapshot match the present installations only (see `was_installed()`).
    oldest = min((snapshot.xmin for snapshot in snapshots), default=None)
    rows = await connection.fetch(
        _INSTALLATIONS,
        list({event.organization_id for event in events}),
        oldest if oldest is not None else 2**63 - 1,
    )
    for installation_id, app_id, organization_id, app_user_id, scopes, owner_id, installed, removed in rows:
        by_org.setdefault(organization_id, []).append(
            InstallationView(
                installation_id,
                app_id,
                organization_id,
                app_user_id,
                frozenset(scopes),
                owner_id,
                installed,
                removed,
            )
        )
    return by_org


async def _owners(connection: asyncpg.Connection, app_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    ids = list(set(app_ids))
    if not ids:
        return {}
    return {app_id: owner_id for app_id, owner_id in await connection.fetch(_OWNERS, ids)}


async def fan_out(
    connection: asyncpg.Connection, events: Sequence[EventRow], index: SubscriptionIndex, *, max_attempts: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The deliveries of these events (one per app and endpoint URL) and their first log entries."""
    views = {event.id: event.view() for event in events}
    installations = await _installations(connection, list(views.values()))
    named = {event.id: installations_channel_app(event.channel) for event in events}
    owners = await _owners(connection, (pair[1] for pair in named.values() if pair is not None))
    app_ids = {inst.app_id for group in installations.values() for inst in group} | set(owners)
    matchers = await index.matchers(connection, app_ids)
    created: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for event in events:
        matches = match_event(
            views[event.id],
            installations=installations.get(event.organization_id, ()),
            matchers=matchers,
            owned_app=_owned_app(named[event.id], owners),
        )
        created.extend(_delivery(event, found, matchers[found.app_id], max_attempts) for found in matches)
    return created


def _owned_app(
    pair: tuple[uuid.UUID, uuid.UUID] | None, owners: dict[uuid.UUID, uuid.UUID]
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(owner, app) of an owner's installations channel, when that organization does own the app."""
    return pair if pair is not None and owners.get(pair[1]) == pair[0] else None


def _app_user_of(
    event: EventRow, found: Match
) -> tuple[uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]:
    """(installation, its organization, its app user) whose `app_user_auth` the delivery carries.

    On the owner's `/owned_apps/{app_id}/installations` channel the event is about one
    installation of that app, anywhere: its own app user, never the owner's (the match may come
    through the owner's own installation of the app, or through none). Elsewhere it is the
    installation the webhook matched through.
    """
    named = installations_channel_app(event.channel)
    if named is not None and named[1] == found.app_id:
        resource = json.loads(event.resource) if isinstance(event.resource, str) else event.resource
        resource = resource if isinstance(resource, dict) else {}
        ids = [_uuid_or_none(resource.get(key)) for key in ("id", "organization_id", "app_user_id")]
        if ids[0] is None or ids[1] is None or ids[2] is None:
            return None, None, None
        return ids[0], ids[1], ids[2]
    installation = found.installation
    if installation is None:
        return None, None, None
    return installation.id, event.organization_id, installation.app_user_id


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _delivery(
    event: EventRow, found: Match, matcher: AppMatcher, max_attempts: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    installation = found.installation
    owner_id = installation.app_owner_id if installation else event.organization_id
    installation_id, target_organization_id, app_user_id = _app_user_of(event, found)
    return delivery_rows(
        kind="webhook",
        app_id=found.app_id,
        organization_id=owner_id,
        webhook_id=found.webhook_id,
        event_id=event.id,
        installation_id=installation_id,
        target_organization_id=target_organization_id,
        app_user_id=app_user_id,
        method="POST",
        endpoint_url=matcher.endpoints[found.webhook_id],
        channel=event.channel,
        action=event.action,
        resource_id=event.resource_id,
        payload={
            "channel": event.channel,
            "action": event.action,
            "resource_id": event.resource_id,
            "resource": event.resource,
        },
        max_attempts=max_attempts,
    )


async def dispatch_batch(
    connection: asyncpg.Connection,
    index: SubscriptionIndex,
    *,
    max_attempts: int,
    limit: int = BATCH_SIZE,
) -> tuple[int, list[tuple[uuid.UUID, str]]]:
    """Lock up to `limit` undispatched events (SKIP LOCKED), fan them out, mark them dispatched.

    Runs inside the caller's transaction; returns (events handled, [(delivery id, endpoint host)]).
    """
    rows = await connection.fetch(_TAKE_EVENTS, limit)
    events = [EventRow(**dict(row)) for row in rows]
    if not events:
        return 0, []
    created = await fan_out(connection, events, index, max_attempts=max_attempts)
    deliveries = [delivery for delivery, _ in created]
    columns = [[delivery.get(column) for delivery in deliveries] for column in _WRITE_COLUMNS]
    columns[_WRITE_COLUMNS.index("payload")] = [json.dumps(delivery["payload"]) for delivery in deliveries]
    await connection.execute(_WRITE, *columns, [event.id for event in events], utcnow())
    return len(events), [(delivery["id"], delivery["endpoint_host"]) for delivery in deliveries]
