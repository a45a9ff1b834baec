"""Recording outcomes: log entries, the deliveries' next states and the webhooks' health, fenced.

One statement per batch (`_RECORD`), or one that also leases into the slots it frees
(`_RECORD_AND_LEASE`); `engine.settle()` chooses.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from apps_api.delivery import columns, lease
from apps_api.delivery.attempts import INTERRUPTED_LAST, Attempt, Deliverer
from apps_api.delivery.retry import Plan, classify, plan_next
from apps_api.delivery.states import AttemptStatus, DeliveryStatus
from apps_api.models.base import utcnow
from apps_api.observability.delivery_metrics import observe_attempt
from apps_api.outbound.client import Outcome

logger = logging.getLogger(__name__)

# Outcomes: the attempts' log entries, their deliveries' next states (fenced: only rows this
# worker still holds, at the attempt it took, change; `finished` lists them), the pending entries
# of the retries, and the webhooks' health (last success and failure, the failure streak that
# automatic disabling reads: delivery/health.py). A success in the batch ends the webhook's streak.
# $1-$7 per entry: id, status, reason, code, body, the exchange's headers and the request's body
# (JSON text: `_exchange()`), duration;
# $8-$12 per delivery: id, status, next attempt, next entry id, attempt count; $13 now; $14 worker.
_RECORD_STEPS = f"""WITH finished_entries AS (
    UPDATE webhook_log_entries AS e
    SET status = v.status, reason = v.reason, response_status_code = v.code, response_body = v.body,
        response_headers = v.exchange::jsonb -> 'response_headers',
        request_headers = v.exchange::jsonb -> 'request_headers',
        request_body = v.exchange::jsonb ->> 'request_body',
        duration = v.duration, completed_at = $13, updated_at = $13
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[], $7::integer[])
        AS v(id, status, reason, code, body, exchange, duration)
    WHERE e.id = v.id AND e.status = 'started'
), finished AS (
    UPDATE outbound_deliveries AS d
    SET status = v.status, locked_until = NULL, locked_by = NULL, updated_at = $13,
        next_attempt_at = coalesce(v.next_attempt_at, d.next_attempt_at),
        current_log_entry_id = coalesce(v.next_entry_id, d.current_log_entry_id),
        completed_at = CASE WHEN v.status = 'pending' THEN d.completed_at ELSE $13 END
    FROM unnest($8::uuid[], $9::text[], $10::timestamptz[], $11::uuid[], $12::integer[])
        AS v(id, status, next_attempt_at, next_entry_id, attempt_count)
    WHERE d.id = v.id AND d.status = 'started' AND d.locked_by = $14 AND d.attempt_count = v.attempt_count
    RETURNING d.id, {columns.names(columns.ENTRY_COPIES, "d.")}, d.attempt_count, d.next_attempt_at,
        v.next_entry_id
), next_entries AS (
    INSERT INTO webhook_log_entries (id, delivery_id, {columns.names(columns.ENTRY_COPIES)},
        status, retry_index, scheduled_at, created_at, updated_at)
    SELECT next_entry_id, id, {columns.names(columns.ENTRY_COPIES)},
        'pending', attempt_count, next_attempt_at, $13, $13
    FROM finished WHERE next_entry_id IS NOT NULL
), outcomes AS (
    SELECT f.webhook_id, bool_or(o.outcome = 'successful') AS any_ok,
        count(*) FILTER (WHERE o.outcome = 'failed') AS failures
    FROM finished AS f JOIN unnest($8::uuid[], $2::text[]) AS o(delivery_id, outcome) ON o.delivery_id = f.id
    WHERE f.webhook_id IS NOT NULL
    GROUP BY f.webhook_id
), health AS (
    UPDATE webhooks AS w
    SET last_success_at = CASE WHEN o.any_ok THEN $13 ELSE w.last_success_at END,
        last_failure_at = CASE WHEN o.failures > 0 THEN $13 ELSE w.last_failure_at END,
        failing_since = CASE WHEN o.any_ok THEN NULL ELSE coalesce(w.failing_since, $13) END,
        failures_in_streak = CASE WHEN o.any_ok THEN 0 ELSE w.failures_in_streak + o.failures END
    FROM outcomes AS o
    WHERE w.id = o.webhook_id
)"""  # noqa: S608 - names from the table metadata

# The outcomes alone; when $15 (a host) is given, also the endpoint's lock for a counted lease next.
_RECORD = f"""{_RECORD_STEPS}, endpoint_lock AS (
    SELECT pg_advisory_xact_lock(hashtextextended($15, 0))
)
SELECT (SELECT array_agg(id) FROM finished) AS owned, (SELECT count(*) FROM endpoint_lock) AS locked
"""  # noqa: S608 - fixed text

# The outcomes and, in the same statement, a new lease in each slot they free: a slot passes
# from a finished attempt to the next due one without ever being free, so the endpoint's count of
# live leases cannot grow and needs neither its lock nor a transaction of several statements
# (one round trip where a counted lease takes four). Only a slot whose lease was still live is
# passed on: a lapsed one may have been counted free and taken by another worker already.
# $1-$14 as `_RECORD`; $15 host, $16 lease until, $17 the interrupted reason, $18 wanted, $19 the
# bound per app.
_PASSED_SLOTS = """, live AS (
    SELECT id FROM outbound_deliveries
    WHERE id = ANY($8::uuid[]) AND status = 'started' AND locked_by = $14 AND locked_until > $13
), slots AS (
    SELECT least($18::integer, (SELECT count(*) FROM finished JOIN live USING (id)))::integer AS free
),"""
_OWNED = " (SELECT array_agg(id) FROM finished) AS owned,"
# RECURSIVE: the lease walks the endpoint's apps (`walk`).
_RECORD_AND_LEASE = (
    "WITH RECURSIVE"  # noqa: S608 - fixed text
    + _RECORD_STEPS.removeprefix("WITH")
    + _PASSED_SLOTS
    + lease.LEASE_STEPS.format(
        host="$15",
        now="$13",
        until="$16",
        worker="$14",
        reason="$17",
        recorded="$8::uuid[]",
        # The finished attempts' slots are theirs no more; the turn passes to the app after theirs.
        released="coalesce((SELECT array_agg(id) FROM finished), '{}'::uuid[])",
        app_bound="$19",
        pivot="coalesce((SELECT app_id FROM finished ORDER BY app_id LIMIT 1), gen_random_uuid())",
        returning=_OWNED,
    )
)


@dataclass
class Recorded:
    """A batch of outcomes as written: their plans, and the attempts whose lease was still ours (`owned`)."""

    results: Sequence[tuple[Attempt, Outcome]]
    plans: list[Plan]
    owned: set[uuid.UUID]
    now: datetime


def _exchange(attempt: Attempt, outcome: Outcome) -> str:
    """The headers both ways and the request's body as one JSON object (absent keys: none)."""
    exchange = {
        "response_headers": outcome.headers,
        "request_headers": attempt.request_headers,
        "request_body": attempt.request_body,
    }
    return json.dumps({key: value for key, value in exchange.items() if value is not None})


def _entry_row(attempt: Attempt, outcome: Outcome) -> tuple[Any, ...]:
    """One attempt's log entry as it finished: id, status, reason, code, body, exchange, duration."""
    ok, reason = classify(outcome, redirect_delivers=attempt.kind == "trigger")
    status = AttemptStatus.SUCCESSFUL if ok else AttemptStatus.FAILED
    return (
        attempt.log_entry_id,
        status,
        reason,
        outcome.status_code,
        outcome.body,
        _exchange(attempt, outcome),
        outcome.duration_ms,
    )


def _entry_arguments(results: Sequence[tuple[Attempt, Outcome]]) -> list[list[Any]]:
    """`_RECORD`'s $1-$7: one array per column of `_entry_row()`."""
    rows = [_entry_row(attempt, outcome) for attempt, outcome in results]
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(7)]


def _delivery_arguments(results: Sequence[tuple[Attempt, Outcome]], plans: list[Plan]) -> list[list[Any]]:
    """`_RECORD`'s $8-$12: the deliveries' next states (a new entry id for each retry)."""
    return [
        [attempt.id for attempt, _ in results],
        [plan.status for plan in plans],
        [plan.next_attempt_at for plan in plans],
        [uuid.uuid4() if plan.status == DeliveryStatus.PENDING else None for plan in plans],
        [attempt.attempt_count for attempt, _ in results],
    ]


def _recording(
    deliverer: Deliverer, results: Sequence[tuple[Attempt, Outcome]], now: datetime
) -> tuple[list[Plan], list[Any]]:
    """The attempts' plans, and the parameters `_RECORD` and `_RECORD_AND_LEASE` share ($1-$14)."""
    plans = [
        plan_next(
            settings=deliverer.settings,
            attempt_count=attempt.attempt_count,
            max_attempts=attempt.max_attempts,
            outcome=outcome,
            now=now,
            redirect_delivers=attempt.kind == "trigger",
        )
        for attempt, outcome in results
    ]
    arguments = [*_entry_arguments(results), *_delivery_arguments(results, plans), now, deliverer.worker_id]
    return plans, arguments


def _recorded(
    results: Sequence[tuple[Attempt, Outcome]], plans: list[Plan], row: Any, now: datetime
) -> Recorded:
    owned = set(row["owned"] or ()) if row is not None else set()
    return Recorded(results, plans, owned, now)


async def record(
    connection: asyncpg.Connection,
    deliverer: Deliverer,
    results: Sequence[tuple[Attempt, Outcome]],
    *,
    lock_host: str | None,
) -> Recorded:
    """Write outcomes (one statement, see `_RECORD`); with `lock_host`, also take its lease lock."""
    now = utcnow()
    plans, arguments = _recording(deliverer, results, now)
    row = await connection.fetchrow(_RECORD, *arguments, lock_host)
    return _recorded(results, plans, row, now)


async def record_and_lease(
    connection: asyncpg.Connection,
    deliverer: Deliverer,
    results: Sequence[tuple[Attempt, Outcome]],
    *,
    host: str,
    wanted: int,
) -> tuple[Recorded, list[Attempt], bool]:
    """Write outcomes and lease into the slots they free, one statement (see `_RECORD_AND_LEASE`)."""
    now = utcnow()
    plans, arguments = _recording(deliverer, results, now)
    until = now + timedelta(seconds=deliverer.lease_seconds)
    app_bound = deliverer.settings.webhook_max_concurrency_per_app_endpoint
    rows = await connection.fetch(
        _RECORD_AND_LEASE, *arguments, host, until, INTERRUPTED_LAST, wanted, app_bound
    )
    leased, more = await lease.attempts_of(connection, deliverer, rows, now)
    return _recorded(results, plans, rows[0], now), leased, more


def report(recorded: Recorded) -> list[Plan | None]:
    """Log and count the committed outcomes; None for an attempt whose lease was lost."""
    plans: list[Plan | None] = []
    for (attempt, outcome), plan in zip(recorded.results, recorded.plans, strict=True):
        if attempt.id not in recorded.owned:
            logger.warning("lease of delivery %s was lost during the attempt", attempt.id)
            plans.append(None)
            continue
        success, reason = classify(outcome, redirect_delivers=attempt.kind == "trigger")
        logger.info(
            "delivery %s attempt %s: %s (%s)",
            attempt.id,
            attempt.attempt_count,
            "ok" if success else reason,
            plan.status,
        )
        observe_attempt(
            kind=attempt.kind,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            final_status=plan.status,
            created_at=attempt.created_at,
            now=recorded.now,
        )
        plans.append(plan)
    return plans
