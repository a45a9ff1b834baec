"""The dispatcher: turns committed events into delivery rows, once each (transactional outbox)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import (
    App,
    AppInstallation,
    Event,
    OutboundDelivery,
    Webhook,
    WebhookChannelSubscription,
    WebhookLogEntry,
)
from apps_api.models.base import utcnow
from apps_api.webhooks.matching import (
    AppMatcher,
    EventView,
    InstallationView,
    Match,
    Subscription,
    installations_channel_app,
    match_event,
)
from apps_api.webhooks.outbox import delivery_rows

logger = logging.getLogger(__name__)

# Plain tables: hot inserts go through Core, without ORM objects.
_LOG_ENTRIES = cast(Table, WebhookLogEntry.__table__)
_DELIVERIES = cast(Table, OutboundDelivery.__table__)

# A webhook change takes effect for events committed one second later at the latest.
INDEX_MAX_AGE_SECONDS = 1.0
BATCH_SIZE = 200


class SubscriptionIndex:
    """Per-process cache of compiled per-app matchers, each at most one second old."""

    def __init__(self, max_age: float = INDEX_MAX_AGE_SECONDS) -> None:
        self.max_age = max_age
        self._entries: dict[uuid.UUID, tuple[float, AppMatcher]] = {}

    async def matchers(
        self, session: AsyncSession, app_ids: Iterable[uuid.UUID]
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
            loaded = await load_matchers(session, stale)
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


async def load_matchers(session: AsyncSession, app_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, AppMatcher]:
    rows = (
        await session.execute(
            select(
                WebhookChannelSubscription.app_id,
                WebhookChannelSubscription.webhook_id,
                WebhookChannelSubscription.channel_pattern,
                WebhookChannelSubscription.is_additions_subscribed,
                WebhookChannelSubscription.is_changes_subscribed,
                WebhookChannelSubscription.is_removals_subscribed,
                Webhook.endpoint_url,
            )
            .join(Webhook, Webhook.id == WebhookChannelSubscription.webhook_id)
            .where(WebhookChannelSubscription.app_id.in_(app_ids))
        )
    ).all()
    matchers: dict[uuid.UUID, AppMatcher] = {}
    for app_id, webhook_id, pattern, additions, changes, removals, endpoint_url in rows:
        matcher = matchers.setdefault(app_id, AppMatcher())
        matcher.add(Subscription(webhook_id, pattern, additions, changes, removals))
        matcher.endpoints[webhook_id] = endpoint_url
    return matchers


async def _installations(
    session: AsyncSession, organization_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[InstallationView]]:
    rows = (
        await session.execute(
            select(
                AppInstallation.id,
                AppInstallation.app_id,
                AppInstallation.organization_id,
                AppInstallation.app_user_id,
                AppInstallation.allowed_scopes,
                App.owned_by_organization_id,
            )
            .join(App, App.id == AppInstallation.app_id)
            .where(AppInstallation.organization_id.in_(set(organization_ids)))
        )
    ).all()
    by_org: dict[uuid.UUID, list[InstallationView]] = {}
    for installation_id, app_id, organization_id, app_user_id, scopes, owner_id in rows:
        by_org.setdefault(organization_id, []).append(
            InstallationView(
                installation_id, app_id, organization_id, app_user_id, frozenset(scopes), owner_id
            )
        )
    return by_org


async def _owners(session: AsyncSession, app_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    ids = set(app_ids)
    if not ids:
        return {}
    rows = (await session.execute(select(App.id, App.owned_by_organization_id).where(App.id.in_(ids)))).all()
    return {app_id: owner_id for app_id, owner_id in rows}


async def fan_out(
    session: AsyncSession, events: Sequence[Event], index: SubscriptionIndex, *, max_attempts: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The deliveries of these events (each webhook once per event) and their first log entries, as rows."""
    installations = await _installations(session, (event.organization_id for event in events))
    named = {event.id: installations_channel_app(event.channel) for event in events}
    owners = await _owners(session, (pair[1] for pair in named.values() if pair is not None))
    app_ids = {inst.app_id for group in installations.values() for inst in group} | set(owners)
    matchers = await index.matchers(session, app_ids)
    created: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for event in events:
        pair = named[event.id]
        owned_app = None
        if pair is not None and owners.get(pair[1]) == pair[0]:
            owned_app = pair
        matches = match_event(
            EventView(event.organization_id, event.channel, event.action, event.required_scope),
            installations=installations.get(event.organization_id, ()),
            matchers=matchers,
            owned_app=owned_app,
        )
        for found in matches:
            created.append(_delivery(event, found, matchers[found.app_id], max_attempts))
    return created


def _delivery(
    event: Event, found: Match, matcher: AppMatcher, max_attempts: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    installation = found.installation
    owner_id = installation.app_owner_id if installation else event.organization_id
    return delivery_rows(
        kind="webhook",
        app_id=found.app_id,
        organization_id=owner_id,
        webhook_id=found.webhook_id,
        event_id=event.id,
        installation_id=installation.id if installation else None,
        target_organization_id=event.organization_id,
        app_user_id=installation.app_user_id if installation else None,
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
    session: AsyncSession,
    index: SubscriptionIndex,
    *,
    event_ids: Sequence[int] | None,
    max_attempts: int,
    limit: int = BATCH_SIZE,
) -> tuple[int, list[tuple[uuid.UUID, str]]]:
    """Lock up to `limit` undispatched events (SKIP LOCKED), fan them out, mark them dispatched.

    Runs inside the caller's transaction; returns (events handled, [(delivery id, endpoint host)]).
    """
    statement = select(Event).where(Event.dispatched_at.is_(None))
    if event_ids is not None:
        statement = statement.where(Event.id.in_(event_ids))
    statement = statement.order_by(Event.id).limit(limit).with_for_update(skip_locked=True)
    events = list((await session.execute(statement)).scalars())
    if not events:
        return 0, []
    created = await fan_out(session, events, index, max_attempts=max_attempts)
    if created:
        # Deliveries first (their log entries reference them), then the events' mark.
        await session.execute(insert(_DELIVERIES), [delivery for delivery, _ in created])
        await session.execute(insert(_LOG_ENTRIES), [entry for _, entry in created])
    await session.execute(
        update(Event)
        .where(Event.id.in_([event.id for event in events]))
        .values(dispatched_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return len(events), [(delivery["id"], delivery["endpoint_host"]) for delivery, _ in created]
