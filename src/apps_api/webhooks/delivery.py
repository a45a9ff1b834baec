"""Sending one attempt of a delivery: lease, sign, SSRF-guarded request, log entry, retry plan.

Shared by webhook notifications and trigger requests. PostgreSQL holds every guarantee:
- the lease (`status='started'`, `locked_until`, `locked_by`) is taken with one conditional
  UPDATE, so two workers never send the same attempt at once, and a lapsed lease (a killed
  worker) lets another worker take over;
- the per-endpoint bound is part of that UPDATE: no new lease while the endpoint already has
  `webhook_max_concurrency_per_endpoint` live ones, so a hanging receiver ties up at most that
  many worker slots and never delays other endpoints;
- the outcome is written only while this worker still holds the lease (fencing on
  `locked_by` and `attempt_count`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from apps_api.models import App, AppInstallation, OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.observability.delivery_metrics import observe_attempt
from apps_api.outbound.client import Outcome, send
from apps_api.settings import Settings
from apps_api.triggers.tokens import encode_access_token, encode_trigger_data
from apps_api.webhooks.outbox import new_log_entry
from apps_api.webhooks.signing import signature_headers

logger = logging.getLogger(__name__)

# Retries due within this many seconds are enqueued as deferred arq jobs; longer waits
# live only in PostgreSQL (`next_attempt_at`) and the sweeper enqueues them when due.
SHORT_WAIT_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
INTERRUPTED = "Interrupted: the worker stopped during the attempt; its lease lapsed."
# Built once: constructing an alias copies every column (measurable per lease).
_OTHER = aliased(OutboundDelivery, name="other")
_CANDIDATE = aliased(OutboundDelivery, name="candidate")


@dataclass
class Deliverer:
    """A worker's delivery machinery: database, settings, HTTP client and identity."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    client: httpx.AsyncClient
    worker_id: str

    @property
    def lease_seconds(self) -> float:
        # A lease always outlives the request's own deadline.
        return max(self.settings.webhook_lease_seconds, self.settings.webhook_timeout + 5)


@dataclass
class Plan:
    """What happens after an attempt: the delivery's new status and, when pending, its next attempt."""

    status: str
    next_attempt_at: datetime | None = None
    delay: float | None = None
    attempt_count: int = 0


def _takeable(status: str, next_attempt_at: datetime, locked_until: datetime | None, now: datetime) -> bool:
    """Due and pending, or started under a lapsed lease."""
    if status == "pending":
        return next_attempt_at <= now
    return status == "started" and locked_until is not None and locked_until < now


async def lease(
    deliverer: Deliverer, delivery_id: uuid.UUID | None = None, *, host: str | None = None
) -> tuple[OutboundDelivery, uuid.UUID] | None:
    """Take the lease of a due (or abandoned) attempt and mark its log entry started; None when not ours.

    With `host` instead of an id: the endpoint's earliest due attempt (a worker that holds one of
    the endpoint's slots keeps it busy with the endpoint's backlog; see `tasks.deliver_outbound`).
    """
    settings = deliverer.settings
    other, candidate = _OTHER, _CANDIDATE
    bound = settings.webhook_max_concurrency_per_endpoint
    async with deliverer.sessionmaker() as session, session.begin():
        now = utcnow()
        if delivery_id is not None:
            row = (
                await session.execute(
                    select(
                        OutboundDelivery.endpoint_host,
                        OutboundDelivery.status,
                        OutboundDelivery.next_attempt_at,
                        OutboundDelivery.locked_until,
                    ).where(OutboundDelivery.id == delivery_id)
                )
            ).first()
            # Cheap exits before the endpoint's lock: already sent (a slot holder drained it), not due,
            # or leased by a live worker. Jobs of a drained backlog end here without contending.
            if row is None or not _takeable(row.status, row.next_attempt_at, row.locked_until, now):
                return None
            host = row.endpoint_host
        if host is None:
            return None
        # An endpoint at its bound has holders that take its due attempts next: leave it to them.
        live = await session.scalar(
            select(func.count())
            .select_from(other)
            .where(other.endpoint_host == host, other.status == "started", other.locked_until > now)
        )
        if (live or 0) >= bound:
            return None
        # Leases of one endpoint are taken one at a time, so the count below is exact.
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(host, 0))))
        now = utcnow()
        busy = (
            select(func.count())
            .select_from(other)
            .where(
                other.endpoint_host == OutboundDelivery.endpoint_host,
                other.status == "started",
                other.locked_until > now,
            )
            .correlate(OutboundDelivery)
            .scalar_subquery()
        )
        takeable = or_(
            and_(OutboundDelivery.status == "pending", OutboundDelivery.next_attempt_at <= now),
            and_(OutboundDelivery.status == "started", OutboundDelivery.locked_until < now),
        )
        if delivery_id is not None:
            target = OutboundDelivery.id == delivery_id
        else:
            earliest = (
                select(candidate.id)
                .where(
                    candidate.endpoint_host == host,
                    or_(
                        and_(candidate.status == "pending", candidate.next_attempt_at <= now),
                        and_(candidate.status == "started", candidate.locked_until < now),
                    ),
                )
                .order_by(candidate.next_attempt_at)
                .limit(1)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            target = OutboundDelivery.id == earliest
        statement = (
            update(OutboundDelivery)
            .where(target, takeable, busy < bound)
            .values(
                status="started",
                locked_until=now + timedelta(seconds=deliverer.lease_seconds),
                locked_by=deliverer.worker_id,
                attempt_count=OutboundDelivery.attempt_count + 1,
                updated_at=now,
            )
            .returning(OutboundDelivery)
            .execution_options(synchronize_session=False)
        )
        delivery = (await session.execute(statement)).scalar_one_or_none()
        if delivery is None:
            return None
    # The commit above released the endpoint's lock: it is held for the lease alone, since every
    # lease of the endpoint waits for it. The attempt's log entry is marked in a second transaction
    # (a worker dying in between leaves the entry `pending`; whoever takes the lapsed lease reuses it).
    async with deliverer.sessionmaker() as session, session.begin():
        entry = None
        if delivery.current_log_entry_id is not None:
            entry = await session.get(WebhookLogEntry, delivery.current_log_entry_id, with_for_update=True)
        if entry is not None and entry.status == "started":
            # The previous attempt's worker died mid-request: close its entry, start a new one.
            entry.status = "failed"
            entry.reason = INTERRUPTED
            entry.completed_at = now
            entry = None
        if entry is None or entry.status != "pending":
            entry = new_log_entry(delivery, retry_index=delivery.attempt_count - 1)
            session.add(entry)
        entry.status = "started"
        entry.retry_index = delivery.attempt_count - 1
        entry.started_at = now
        await session.flush()
        await session.execute(
            update(OutboundDelivery)
            .where(
                OutboundDelivery.id == delivery.id,
                OutboundDelivery.locked_by == deliverer.worker_id,
                OutboundDelivery.attempt_count == delivery.attempt_count,
            )
            .values(current_log_entry_id=entry.id)
            .execution_options(synchronize_session=False)
        )
        delivery.current_log_entry_id = entry.id
        return delivery, entry.id


async def _webhook_request(
    deliverer: Deliverer, session: AsyncSession, delivery: OutboundDelivery
) -> tuple[str, dict[str, str], bytes] | str:
    secret = await session.scalar(select(App.secret).where(App.id == delivery.app_id))
    if secret is None:
        return "The app no longer exists."
    body: dict[str, Any] = dict(delivery.payload)
    if delivery.app_user_id is not None and delivery.installation_id is not None:
        installed = await session.scalar(
            select(AppInstallation.id).where(AppInstallation.id == delivery.installation_id)
        )
        if installed is not None and delivery.target_organization_id is not None:
            body["app_user_auth"] = encode_access_token(
                secret_key=deliverer.settings.secret_key,
                user_id=delivery.app_user_id,
                organization_id=delivery.target_organization_id,
                app_id=delivery.app_id,
                installation_id=delivery.installation_id,
            )
    content = json.dumps(body, separators=(",", ":"), default=str).encode()
    headers = signature_headers(
        secret=secret, message_id=delivery.message_id, timestamp=int(time.time()), body=content
    )
    headers["content-type"] = "application/json"
    return delivery.endpoint_url, headers, content


def _trigger_request(delivery: OutboundDelivery) -> tuple[str, dict[str, str], bytes] | str:
    secret = delivery.signing_secret
    if not secret:
        return "The trigger has no signing secret."
    claims = delivery.payload.get("claims", {})

    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(value) if value else None

    data = encode_trigger_data(
        app_secret=secret,
        app_id=delivery.app_id,
        organization_id=uuid.UUID(claims["organization_id"]),
        installation_id=as_uuid(claims.get("installation_id")),
        user_id=as_uuid(claims.get("user_id")),
        app_user_id=as_uuid(claims.get("app_user_id")),
        app_user_code=None,
    )
    separator = "&" if "?" in delivery.endpoint_url else "?"
    url = delivery.endpoint_url + separator + urlencode({"type": delivery.payload.get("type"), "data": data})
    headers = signature_headers(
        secret=secret, message_id=delivery.message_id, timestamp=int(time.time()), body=b""
    )
    return url, headers, b""


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


def classify(outcome: Outcome) -> tuple[bool, str | None]:
    """(success, failure reason)."""
    code = outcome.status_code
    if outcome.error is not None:
        return False, outcome.error
    assert code is not None
    if 200 <= code < 300:
        return True, None
    if 300 <= code < 400:
        return False, f"Redirect ({code}) not followed."
    if code == 410:
        return False, "Gone (410): the endpoint asked to stop; no more retries."
    return False, f"Non-2xx response: {code}."


def plan_next(
    *, settings: Settings, attempt_count: int, max_attempts: int, outcome: Outcome, now: datetime
) -> Plan:
    """Success, final failure, or the time of the next attempt (schedule with jitter, or Retry-After)."""
    success, _ = classify(outcome)
    if success:
        return Plan("successful", attempt_count=attempt_count)
    if outcome.status_code == 410 or attempt_count >= max_attempts:
        return Plan("failed", attempt_count=attempt_count)
    delays = settings.retry_delays or (5.0,)
    delay = delays[min(attempt_count - 1, len(delays) - 1)] * random.uniform(0.9, 1.1)
    if outcome.status_code in (429, 503):
        retry_after = retry_after_seconds(outcome.header("retry-after"), now)
        if retry_after is not None:
            delay = min(max(retry_after, 1.0), MAX_RETRY_AFTER_SECONDS)
    return Plan("pending", now + timedelta(seconds=delay), delay, attempt_count)


async def attempt(deliverer: Deliverer, delivery: OutboundDelivery, entry_id: uuid.UUID) -> Plan | None:
    """Send the leased attempt and record its outcome; None when the lease was lost meanwhile."""
    async with deliverer.sessionmaker() as session:
        request = (
            await _webhook_request(deliverer, session, delivery)
            if delivery.kind == "webhook"
            else _trigger_request(delivery)
        )
    if isinstance(request, str):
        outcome = Outcome(error=request)
        # Nothing to retry against: fail the delivery now.
        delivery.max_attempts = delivery.attempt_count
    else:
        url, headers, content = request
        outcome = await send(
            deliverer.client,
            method=delivery.method,
            url=url,
            headers=headers,
            content=content if delivery.method != "GET" else None,
            total_timeout=deliverer.settings.webhook_timeout,
        )
    return await record(deliverer, delivery, entry_id, outcome)


async def record(
    deliverer: Deliverer, delivery: OutboundDelivery, entry_id: uuid.UUID, outcome: Outcome
) -> Plan | None:
    """Write the attempt's log entry and the delivery's next state, fenced by the lease."""
    success, reason = classify(outcome)
    async with deliverer.sessionmaker() as session, session.begin():
        now = utcnow()
        plan = plan_next(
            settings=deliverer.settings,
            attempt_count=delivery.attempt_count,
            max_attempts=delivery.max_attempts,
            outcome=outcome,
            now=now,
        )
        await session.execute(
            update(WebhookLogEntry)
            .where(WebhookLogEntry.id == entry_id, WebhookLogEntry.status == "started")
            .values(
                status="successful" if success else "failed",
                reason=reason,
                response_status_code=outcome.status_code,
                response_body=outcome.body,
                response_headers=outcome.headers,
                duration=outcome.duration_ms,
                completed_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        values: dict[str, Any] = {
            "status": plan.status,
            "locked_until": None,
            "locked_by": None,
            "updated_at": now,
        }
        next_entry = None
        if plan.status == "pending":
            assert plan.next_attempt_at is not None
            values["next_attempt_at"] = plan.next_attempt_at
            delivery.next_attempt_at = plan.next_attempt_at
            next_entry = new_log_entry(delivery, retry_index=delivery.attempt_count)
            values["current_log_entry_id"] = next_entry.id
        else:
            values["completed_at"] = now
        owned = (
            await session.execute(
                update(OutboundDelivery)
                .where(
                    OutboundDelivery.id == delivery.id,
                    OutboundDelivery.status == "started",
                    OutboundDelivery.locked_by == deliverer.worker_id,
                    OutboundDelivery.attempt_count == delivery.attempt_count,
                )
                .values(**values)
                .returning(OutboundDelivery.id)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        if owned is None:
            logger.warning("lease of delivery %s was lost during the attempt", delivery.id)
            return None
        if next_entry is not None:
            session.add(next_entry)
    logger.info(
        "delivery %s attempt %s: %s (%s)",
        delivery.id,
        delivery.attempt_count,
        "ok" if success else reason,
        plan.status,
    )
    observe_attempt(
        kind=delivery.kind,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        final_status=plan.status,
        created_at=delivery.created_at,
        now=now,
    )
    return plan
