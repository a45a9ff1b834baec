"""Webhook changes (with their events), redelivery, and event ingestion."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery import columns
from apps_api.delivery.channels import WEBHOOK_TEST
from apps_api.delivery.events import emit
from apps_api.delivery.follow import move_deliveries
from apps_api.delivery.health import (
    DELETED_DELIVERY_REASON,
    DISABLED_DELIVERY_REASON,
    emit_webhook_event,
    end_deliveries_of_webhook,
)
from apps_api.delivery.outbox import DELIVER_JOB, endpoint_host, new_log_entry, schedule_delivery
from apps_api.delivery.states import AttemptStatus, DeliveryStatus
from apps_api.kit.errors import BadRequest, Conflict, NotFound
from apps_api.kit.queue import enqueue_after_commit
from apps_api.models import App, OutboundDelivery, User, Webhook, WebhookChannelSubscription, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.webhooks import catalogue, channel_registry, channel_schemas, repository, schemas

# Health attributes change on their own: a change event carries what the caller changed.
_NOT_CHANGES = frozenset({"delivery_stats", "last_success_at", "last_failure_at"})
DISABLED_BY_OWNER = "Disabled by the app owner."


def view(webhook: Webhook) -> dict[str, Any]:
    return schemas.Webhook.model_validate(webhook).model_dump(mode="json")


async def _reload(session: AsyncSession, webhook: Webhook) -> Webhook:
    statement = (
        select(Webhook)
        .where(Webhook.id == webhook.id)
        .options(*repository.webhook_options())
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).unique().scalar_one()


def _subscriptions(
    app: App, webhook_id: uuid.UUID, items: list[schemas.ChannelSubscriptionInput]
) -> list[WebhookChannelSubscription]:
    return [
        WebhookChannelSubscription(
            webhook_id=webhook_id,
            app_id=app.id,
            position=position,
            channel_pattern=item.channel_pattern,
            is_additions_subscribed=item.is_additions_subscribed,
            is_changes_subscribed=item.is_changes_subscribed,
            is_removals_subscribed=item.is_removals_subscribed,
        )
        for position, item in enumerate(items)
    ]


# Per app: one event fans out to one delivery per matching webhook, and a tenant can fire its
# own events at will, so both the webhooks and the patterns to match are bounded (docs/webhooks.md, limits).
MAX_WEBHOOKS_PER_APP = 20
MAX_SUBSCRIPTIONS_PER_APP = 500


async def _check_app_limits(
    *, session: AsyncSession, app: App, replacing: Webhook | None, subscriptions: int | None
) -> None:
    """400 when the app would exceed its webhooks or channel subscriptions (`replacing`: the webhook
    whose subscriptions are replaced, None for a new webhook; `subscriptions` None: unchanged)."""
    # Concurrent changes of one app's webhooks take turns, so two creations cannot both pass
    # the count (an advisory lock: the app's row lock would also hold up installs).
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"webhooks:{app.id}"}
    )
    if replacing is None:
        webhooks = select(func.count()).select_from(Webhook).where(Webhook.app_id == app.id)
        count = await session.scalar(webhooks)
        if (count or 0) >= MAX_WEBHOOKS_PER_APP:
            raise BadRequest(
                f"An app may have at most {MAX_WEBHOOKS_PER_APP} webhooks; delete one first.",
                errors={"non_field_errors": [f"Limit of {MAX_WEBHOOKS_PER_APP} webhooks per app reached."]},
            )
    if not subscriptions:
        return
    others = (
        select(func.count())
        .select_from(WebhookChannelSubscription)
        .where(WebhookChannelSubscription.app_id == app.id)
    )
    if replacing is not None:
        others = others.where(WebhookChannelSubscription.webhook_id != replacing.id)
    total = (await session.scalar(others) or 0) + subscriptions
    if total > MAX_SUBSCRIPTIONS_PER_APP:
        raise BadRequest.field(
            "channel_subscriptions",
            f"An app may have at most {MAX_SUBSCRIPTIONS_PER_APP} channel subscriptions across its "
            f"webhooks; this change would make {total}.",
        )


async def create_webhook(
    *, session: AsyncSession, app: App, actor: User, data: schemas.WebhookCreate
) -> Webhook:
    """Create a webhook of an owned app; emits `added` on the app's webhooks channel."""
    await _check_app_limits(
        session=session, app=app, replacing=None, subscriptions=len(data.channel_subscriptions)
    )
    webhook = Webhook(
        id=uuid.uuid4(),
        app_id=app.id,
        organization_id=app.owned_by_organization_id,
        endpoint_url=data.endpoint_url,
        created_by_user_id=actor.id,
        updated_by_user_id=actor.id,
    )
    session.add(webhook)
    await session.flush()
    session.add_all(_subscriptions(app, webhook.id, data.channel_subscriptions))
    await session.flush()
    webhook = await _reload(session, webhook)
    await emit_webhook_event(
        session=session, webhook=webhook, action="added", resource=view(webhook), actor_user_id=actor.id
    )
    return webhook


async def update_webhook(
    *, session: AsyncSession, app: App, webhook: Webhook, actor: User, changes: schemas.WebhookUpdate
) -> Webhook:
    """Change what `changes` gives (None: unchanged); emits `changed` with the changed attributes."""
    endpoint_url, channel_subscriptions = changes.endpoint_url, changes.channel_subscriptions
    is_disabled = changes.is_disabled
    if channel_subscriptions is not None:
        await _check_app_limits(
            session=session, app=app, replacing=webhook, subscriptions=len(channel_subscriptions)
        )
    before = view(webhook)
    if endpoint_url is not None:
        webhook.endpoint_url = endpoint_url
    if channel_subscriptions is not None:
        for subscription in list(webhook.channel_subscriptions):
            await session.delete(subscription)
        await session.flush()
        session.add_all(_subscriptions(app, webhook.id, channel_subscriptions))
    if is_disabled is not None and is_disabled != webhook.is_disabled:
        _set_disabled(webhook, is_disabled)
    webhook.updated_by_user_id = actor.id
    webhook.updated_at = utcnow()
    await session.flush()
    await _follow(session=session, webhook=webhook, moved=before["endpoint_url"] != webhook.endpoint_url)
    webhook = await _reload(session, webhook)
    after = view(webhook)
    changed = {
        key: value for key, value in after.items() if before.get(key) != value and key not in _NOT_CHANGES
    }
    await emit_webhook_event(
        session=session, webhook=webhook, action="changed", resource=changed, actor_user_id=actor.id
    )
    return webhook


async def _follow(*, session: AsyncSession, webhook: Webhook, moved: bool) -> None:
    """The webhook's waiting deliveries follow the change just flushed (the webhook's row is locked).

    A disabled webhook's end now ("Webhook disabled"); a new URL takes the others along, and
    the pump of its endpoint starts once the change commits: no token goes to the old URL.
    """
    now = utcnow()
    if webhook.is_disabled:
        await end_deliveries_of_webhook(
            session=session, webhook_id=webhook.id, reason=DISABLED_DELIVERY_REASON, now=now
        )
    elif moved and await move_deliveries(
        session=session, webhook_id=webhook.id, endpoint_url=webhook.endpoint_url, now=now
    ):
        host = endpoint_host(webhook.endpoint_url)
        enqueue_after_commit(session, DELIVER_JOB, None, host, _job_id=f"moved:{webhook.id}:{uuid.uuid4()}")


def _set_disabled(webhook: Webhook, disabled: bool) -> None:
    """Disable (the sweeper then ends its pending deliveries) or re-enable with a fresh streak."""
    webhook.is_disabled = disabled
    webhook.disabled_at = utcnow() if disabled else None
    webhook.disabled_reason = DISABLED_BY_OWNER if disabled else None
    webhook.failing_since = None
    webhook.failures_in_streak = 0


async def delete_webhook(*, session: AsyncSession, app: App, webhook: Webhook, actor: User) -> None:
    """Delete a webhook and its subscriptions; emits `removed`.

    Its waiting deliveries end failed ("Webhook deleted"); they and their log entries stay (with
    the webhook's id) until the log's retention ends.
    """
    resource = view(webhook)
    await end_deliveries_of_webhook(
        session=session, webhook_id=webhook.id, reason=DELETED_DELIVERY_REASON, now=utcnow()
    )
    await session.delete(webhook)
    await session.flush()
    await emit_webhook_event(
        session=session, webhook=webhook, action="removed", resource=resource, actor_user_id=actor.id
    )


async def redeliver(*, session: AsyncSession, entry: WebhookLogEntry) -> WebhookLogEntry:
    """Schedule one more attempt of the entry's delivery, now; returns that attempt's pending entry.

    A delivery waiting for a retry is brought forward; a finished one (successful or failed)
    gets exactly one more attempt with the same `webhook-id`, sent to the webhook's URL as it is
    now. 409 while an attempt is in flight, and when the webhook is disabled or deleted.
    """
    delivery = await session.get(OutboundDelivery, entry.delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound("No webhook log entry found with the given ID.")
    if delivery.status == DeliveryStatus.STARTED:
        raise Conflict("An attempt of this delivery is in progress; try again when it has finished.")
    # Then the webhook's row, in the order of the statement that records outcomes (deliveries,
    # then webhooks): a change of its URL in flight commits first and is read here.
    webhook = None
    if delivery.webhook_id is not None:
        webhook = await session.get(Webhook, delivery.webhook_id, with_for_update={"read": True})
    if delivery.kind == "webhook":
        if webhook is None:
            raise Conflict("The webhook of this delivery was deleted.")
        _refuse_disabled(webhook)
        delivery.endpoint_url = webhook.endpoint_url
        delivery.endpoint_host = endpoint_host(webhook.endpoint_url)
    now = utcnow()
    pending = None
    if delivery.status == DeliveryStatus.PENDING and delivery.current_log_entry_id is not None:
        pending = await session.get(WebhookLogEntry, delivery.current_log_entry_id)
    delivery.next_attempt_at = now
    if pending is None or pending.status != AttemptStatus.PENDING:
        delivery.status = DeliveryStatus.PENDING
        delivery.completed_at = None
        delivery.max_attempts = max(delivery.max_attempts, delivery.attempt_count + 1)
        pending = new_log_entry(delivery, retry_index=delivery.attempt_count)
        session.add(pending)
        delivery.current_log_entry_id = pending.id
    pending.scheduled_at = now
    pending.endpoint_url = delivery.endpoint_url
    await session.flush()
    # A job id of its own: a deferred retry job of this delivery must not swallow it.
    enqueue_after_commit(session, DELIVER_JOB, str(delivery.id), _job_id=f"redeliver:{pending.id}")
    return pending


async def ingest_events(*, session: AsyncSession, batch: channel_schemas.IngestBatch) -> list[int]:
    """Record a batch of other services' events in one transaction (all or none); 400 when an
    event of a registered channel family does not fit it."""
    channel_registry.check_ingested(batch, await channel_registry.registered_entries(db=session))
    ids = []
    for item in batch.events:
        event = await emit(
            session=session,
            organization_id=item.organization_id,
            channel=item.channel,
            action=item.action,
            resource_id=item.resource_id,
            resource=item.resource,
            required_scope=item.required_scope,
        )
        ids.append(event.id)
    return ids


def _refuse_disabled(webhook: Webhook) -> None:
    if webhook.is_disabled:
        raise Conflict("The webhook is disabled; re-enable it first (PATCH `is_disabled` false).")


async def send_test_event(
    *,
    session: AsyncSession,
    webhook: Webhook,
    max_attempts: int,
    example: schemas.WebhookTestRequest | None = None,
) -> WebhookLogEntry:
    """Schedule a signed `test` notification of the webhook, or a channel's example body (`example`);
    returns its first attempt's pending entry.

    It enters the outbox like every delivery: logged, retried, and sent by the same engine.
    """
    _refuse_disabled(webhook)
    if example is None:
        path = WEBHOOK_TEST.channel(
            organization_id=webhook.organization_id, app_id=webhook.app_id, webhook_id=webhook.id
        )
        body = {"channel": path, "action": "test", "resource_id": str(webhook.id), "resource": view(webhook)}
    else:
        body = await _example_body(session=session, webhook=webhook, example=example)
    _, entry = await schedule_delivery(
        session=session,
        kind="webhook",
        app_id=webhook.app_id,
        organization_id=webhook.organization_id,
        webhook_id=webhook.id,
        method="POST",
        endpoint_url=webhook.endpoint_url,
        channel=body["channel"],
        action=body["action"],
        resource_id=body["resource_id"],
        payload=body,
        max_attempts=max_attempts,
    )
    return entry


async def _example_body(
    *, session: AsyncSession, webhook: Webhook, example: schemas.WebhookTestRequest
) -> dict[str, Any]:
    """The catalogue's example body of a channel and action, as the webhook's own; 400 if none."""
    entries = await channel_registry.catalogue(db=session)
    entry = next((entry for entry in entries if entry.pattern == example.channel), None)
    if entry is None:
        raise BadRequest.field("channel", "Not a channel of the catalogue (GET /api/v5/webhook_channels).")
    action = example.action or entry.actions[0]
    if action not in entry.actions:
        raise BadRequest.field("action", f"`{entry.pattern}` has the actions {', '.join(entry.actions)}.")
    body = catalogue.example_for_webhook(
        entry, action, organization_id=webhook.organization_id, app_id=webhook.app_id, webhook_id=webhook.id
    )
    if body is None:
        raise BadRequest.field("channel", "The channel has no example (its registration gave none).")
    return body


# One new attempt of each delivery of the webhook that ended failed since :since: pending now,
# to the webhook's URL as it is now, with a pending log entry of its own (same delivery, so the
# same `webhook-id`).
_RECOVER = f"""
WITH requeued AS (
    UPDATE outbound_deliveries AS d
    SET status = 'pending', completed_at = NULL, next_attempt_at = :now, updated_at = :now,
        max_attempts = greatest(d.max_attempts, d.attempt_count + 1),
        current_log_entry_id = gen_random_uuid(), endpoint_url = :url, endpoint_host = :host
    WHERE d.webhook_id = :webhook_id AND d.status = 'failed' AND d.completed_at >= :since
    RETURNING d.*
), entries AS (
    INSERT INTO webhook_log_entries (id, delivery_id, {columns.names(columns.ENTRY_COPIES)},
        status, retry_index, scheduled_at, created_at, updated_at)
    SELECT current_log_entry_id, id, {columns.names(columns.ENTRY_COPIES)},
        'pending', attempt_count, :now, :now, :now
    FROM requeued
)
SELECT endpoint_host, count(*) FROM requeued GROUP BY endpoint_host
"""  # noqa: S608 - names from the table metadata


async def recover(*, session: AsyncSession, webhook: Webhook, since: datetime, retention_days: int) -> int:
    """Schedule one new attempt of each delivery of the webhook that ended failed since `since`."""
    _refuse_disabled(webhook)
    now = utcnow()
    if since < now - timedelta(days=retention_days):
        raise BadRequest.field("since", f"Must be at most {retention_days} days ago (the log's retention).")
    # Under the webhook's row lock: a change of its URL waits, or has committed and is read here.
    url = await session.scalar(
        select(Webhook.endpoint_url).where(Webhook.id == webhook.id).with_for_update(read=True)
    )
    if url is None:
        raise NotFound("No webhook found with the given ID.")
    parameters = {"webhook_id": webhook.id, "since": since, "now": now}
    target = {"url": url, "host": endpoint_host(url)}
    rows = (await session.execute(text(_RECOVER), {**parameters, **target})).all()
    for host, _ in rows:
        # A job of its own per endpoint: its pump sends every due attempt of the endpoint.
        enqueue_after_commit(session, DELIVER_JOB, None, host, _job_id=f"recover:{uuid.uuid4()}")
    return sum(count for _, count in rows)
