"""The lease: an endpoint's due or abandoned attempts, taken within its bounds, their log entries started.

The statements' SQL is built once here; `engine.settle()` runs them (see its guarantees).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from apps_api.delivery import columns
from apps_api.delivery.attempts import INTERRUPTED, INTERRUPTED_LAST, Attempt, Deliverer
from apps_api.delivery.outbox import delivery_fields, log_entry_fields
from apps_api.delivery.states import AttemptStatus
from apps_api.kit.driver import insert_rows
from apps_api.models.base import utcnow

# Round trips are what a settle costs (and each waits for a busy PostgreSQL to be scheduled), so
# each step is one statement: data-modifying CTEs in place of separate UPDATEs and INSERTs.

# An endpoint's new leases are counted one transaction at a time, so the bound below is exact.
LOCK_ENDPOINT = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# A webhook attempt is sent only to its webhook's URL as it is now, and only while the webhook
# exists and is enabled: the rows of a deleted or disabled webhook wait for the sweeper to end
# them (delivery/health.py), a row whose URL is out of date for it to move them (delivery/follow.py).
# A scalar subquery, not EXISTS: the planner may hash an EXISTS (a scan of every webhook per
# lease); this is one primary-key lookup per candidate row, NULL (not sent) without its webhook.
_SENDABLE = """
      AND (outbound_deliveries.kind = 'trigger' OR (
          SELECT NOT w.is_disabled AND w.endpoint_url = outbound_deliveries.endpoint_url
          FROM webhooks AS w WHERE w.id = outbound_deliveries.webhook_id
      ))"""
# The same condition on a row aliased `d`.
_SENDABLE_D = _SENDABLE.replace("outbound_deliveries.", "d.")

# The lease once its free slots are known (a CTE `slots` with one row, `free`): lapsed attempts
# first, then due ones, earliest first, at most `free`; their pending log entries become started
# (`entry_started` false: the entry is missing or was left started by a worker that died
# mid-request, see `_start_other_entries`). A lapsed lease counts as an attempt: a delivery
# whose lapsed attempt was its last is failed here (its entry "Interrupted") instead of being
# sent again, so even an attempt that kills its worker every time ends within the schedule.
# Placeholders: {host}, {now}, {until} (the lease's end), {worker}, {reason} (the interrupted
# reason), {recorded} (deliveries recorded by the same statement, which it must not touch) and
# {returning} (what the statement returns besides).
# What a lease returns of the delivery row: the `Attempt` fields that are its columns.
_LEASED_COLUMNS = tuple(field.name for field in fields(Attempt) if field.name in columns.DELIVERIES.c)
LEASE_STEPS = f"""
exhausted AS (
    UPDATE outbound_deliveries AS d
    SET status = 'failed', locked_until = NULL, locked_by = NULL, updated_at = {{now}}, completed_at = {{now}}
    WHERE d.id IN (
        SELECT id FROM outbound_deliveries
        WHERE endpoint_host = {{host}} AND status = 'started' AND locked_until < {{now}}
          AND attempt_count >= max_attempts AND id <> ALL({{recorded}})
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.current_log_entry_id
), exhausted_entries AS (
    UPDATE webhook_log_entries AS e
    SET status = 'failed', reason = {{reason}}, completed_at = {{now}}, updated_at = {{now}}
    FROM exhausted
    WHERE e.id = exhausted.current_log_entry_id AND e.status IN ('pending', 'started')
), holding AS (
    -- The endpoint's live leases (every worker's) but those this statement records.
    SELECT app_id FROM outbound_deliveries
    WHERE endpoint_host = {{host}} AND status = 'started' AND locked_until > {{now}}
      AND id <> ALL({{released}})
), lapsed_turns AS (
    SELECT id, app_id, locked_until,
        row_number() OVER (PARTITION BY app_id ORDER BY locked_until, id) AS turn
    FROM outbound_deliveries
    WHERE endpoint_host = {{host}} AND status = 'started' AND attempt_count < max_attempts
      AND locked_until < {{now}} AND id <> ALL({{recorded}}){_SENDABLE}
), lapsed_chosen AS (
    -- An app's n-th attempt is a candidate only while n more stay within the app's bound.
    SELECT id, app_id, locked_until FROM lapsed_turns AS t
    WHERE t.turn <= {{app_bound}} - (SELECT count(*) FROM holding AS h WHERE h.app_id = t.app_id)
), lapsed AS (
    -- Only candidates are locked, each condition checked again on the row's latest version: as
    -- every worker's candidates are the first of each app's attempts as its statement saw them,
    -- workers leasing at once (swaps take no lock) cannot together pass an app's bound.
    SELECT d.id, d.app_id FROM lapsed_chosen AS c JOIN outbound_deliveries AS d ON d.id = c.id
    WHERE d.status = 'started' AND d.locked_until < {{now}} AND d.attempt_count < d.max_attempts
    ORDER BY c.locked_until
    LIMIT (SELECT free FROM slots)
    FOR UPDATE OF d SKIP LOCKED
), pivot AS (
    SELECT {{pivot}} AS app_id
), walk (app_id, lap, step) AS (
    -- The apps with pending attempts here, one index probe each, in turn: those after the
    -- pivot's id, then from the first up to the pivot. Read lazily: the walk stops once enough
    -- candidates are found, however many apps and attempts wait.
    SELECT app_id, 0, 0 FROM pivot
    UNION ALL
    SELECT next_app.app_id, next_app.lap, walk.step + 1
    FROM walk CROSS JOIN LATERAL (
        (SELECT d.app_id, walk.lap FROM outbound_deliveries AS d
         WHERE d.endpoint_host = {{host}} AND d.status = 'pending' AND d.app_id > walk.app_id
           AND (walk.lap = 0 OR d.app_id <= (SELECT app_id FROM pivot))
         ORDER BY d.app_id LIMIT 1)
        UNION ALL
        (SELECT d.app_id, 1 FROM outbound_deliveries AS d
         WHERE walk.lap = 0 AND d.endpoint_host = {{host}} AND d.status = 'pending'
           AND d.app_id <= (SELECT app_id FROM pivot)
         ORDER BY d.app_id LIMIT 1)
        LIMIT 1
    ) AS next_app
), due_chosen AS (
    -- Each app's due attempts, earliest first, as many as its bound leaves (index order, so it
    -- stops at that number whatever the app's backlog); twice the slots' worth in all, so that
    -- attempts another worker takes meanwhile can be skipped.
    SELECT queued.id, queued.next_attempt_at, walk.step FROM walk CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at FROM outbound_deliveries AS d
        WHERE d.endpoint_host = {{host}} AND d.app_id = walk.app_id AND d.status = 'pending'
          AND d.next_attempt_at <= {{now}}{_SENDABLE_D}
        ORDER BY d.next_attempt_at
        -- An app's lapsed attempts count as taken even when another worker holds them now.
        LIMIT greatest(0,
            {{app_bound}} - (SELECT count(*) FROM holding AS h WHERE h.app_id = walk.app_id)
                - (SELECT count(*) FROM lapsed_chosen AS l WHERE l.app_id = walk.app_id)
        )
    ) AS queued
    WHERE walk.step > 0
    LIMIT 2 * greatest(0, (SELECT free FROM slots) - (SELECT count(*) FROM lapsed))
), due AS (
    SELECT d.id, d.app_id FROM due_chosen AS c JOIN outbound_deliveries AS d ON d.id = c.id
    WHERE d.status = 'pending' AND d.next_attempt_at <= {{now}}
    ORDER BY c.step, c.next_attempt_at
    LIMIT greatest(0, (SELECT free FROM slots) - (SELECT count(*) FROM lapsed))
    FOR UPDATE OF d SKIP LOCKED
), picked AS (
    SELECT id, app_id FROM lapsed UNION ALL SELECT id, app_id FROM due
), blocked AS (
    -- Whether due attempts may have been left for lack of a slot of their app's (or for another
    -- worker taking them): the pump then leases again when one of its attempts finishes.
    SELECT (SELECT count(*) FROM picked) < (SELECT free FROM slots) AND (
            (SELECT count(*) FROM picked)
                < (SELECT count(*) FROM lapsed_chosen) + (SELECT count(*) FROM due_chosen)
        )
        OR EXISTS (
            SELECT 1 FROM (SELECT app_id FROM holding UNION ALL SELECT app_id FROM picked) AS t
            GROUP BY app_id HAVING count(*) >= {{app_bound}}
        ) AS blocked
), leased AS (
    UPDATE outbound_deliveries AS d
    SET status = 'started', locked_until = {{until}}, locked_by = {{worker}},
        attempt_count = d.attempt_count + 1, updated_at = {{now}}
    FROM picked
    WHERE d.id = picked.id
    RETURNING {columns.names(_LEASED_COLUMNS, "d.")}, d.current_log_entry_id AS log_entry_id,
        (SELECT apps.secret FROM apps WHERE apps.id = d.app_id) AS app_secret,
        (SELECT apps.previous_secret FROM apps
         WHERE apps.id = d.app_id AND apps.previous_secret_expires_at > {{now}}) AS app_previous_secret,
        EXISTS (SELECT 1 FROM app_installations AS i WHERE i.id = d.installation_id) AS installed
), started AS (
    UPDATE webhook_log_entries AS e
    SET status = 'started', retry_index = leased.attempt_count - 1, started_at = {{now}}, updated_at = {{now}}
    FROM leased
    WHERE e.id = leased.log_entry_id AND e.status = 'pending'
    RETURNING e.id
)
SELECT slots.free, blocked.blocked,{{returning}} leased.*,
    EXISTS (SELECT 1 FROM started WHERE started.id = leased.log_entry_id) AS entry_started
FROM slots CROSS JOIN blocked LEFT JOIN leased ON true
"""  # noqa: S608 - names from the table metadata

# Every free slot of the endpoint at once: at most `bound` minus the endpoint's live leases (all
# workers), and at most `wanted`. Always at least one row: `free` is the number of slots it could
# fill (a row with a NULL id when it leased none). The caller holds the endpoint's lock.
# $1 host, $2 now, $3 wanted, $4 bound, $5 lease until, $6 worker id, $7 the interrupted reason,
# $8 the bound per app.
_COUNTED_SLOTS = """
WITH RECURSIVE slots AS (
    SELECT greatest(0, least(
        $3::integer,
        $4::integer - (
            SELECT count(*) FROM outbound_deliveries
            WHERE endpoint_host = $1 AND status = 'started' AND locked_until > $2
        )
    )) AS free
),"""
LEASE = _COUNTED_SLOTS + LEASE_STEPS.format(
    host="$1",
    now="$2",
    until="$5",
    worker="$6",
    reason="$7",
    recorded="'{}'::uuid[]",
    released="'{}'::uuid[]",
    app_bound="$8",
    pivot="gen_random_uuid()",
    returning="",
)

# A started entry of a lapsed lease: its worker died mid-request.
_CLOSE_INTERRUPTED = """
UPDATE webhook_log_entries
SET status = 'failed', reason = $2, completed_at = $3, updated_at = $3
WHERE id = ANY($1::uuid[]) AND status = 'started'
"""

_SET_CURRENT_ENTRIES = """
UPDATE outbound_deliveries AS d
SET current_log_entry_id = v.entry_id
FROM unnest($1::uuid[], $2::uuid[], $3::integer[]) AS v(id, entry_id, attempt_count)
WHERE d.id = v.id AND d.locked_by = $4 AND d.attempt_count = v.attempt_count
"""


def _started_log_entry(attempt: Attempt, *, now: datetime) -> dict[str, Any]:
    entry = log_entry_fields(delivery_fields(attempt), retry_index=attempt.attempt_count - 1)
    return {**entry, "status": AttemptStatus.STARTED, "started_at": now, "created_at": now, "updated_at": now}


async def lease(
    connection: asyncpg.Connection, deliverer: Deliverer, *, host: str, wanted: int
) -> tuple[list[Attempt], bool]:
    """Lease up to `wanted` due (or abandoned) attempts of one endpoint and mark their log entries started.

    Never more than the endpoint's free slots across all workers. Returns the attempts and
    whether more may be due: false when fewer were due than the slots it could fill.
    The caller holds the endpoint's lock (`LOCK_ENDPOINT`, or `record.record` given the host).
    """
    now = utcnow()
    rows = await connection.fetch(
        LEASE,
        host,
        now,
        wanted,
        deliverer.settings.webhook_max_concurrency_per_endpoint,
        now + timedelta(seconds=deliverer.lease_seconds),
        deliverer.worker_id,
        INTERRUPTED_LAST,
        deliverer.settings.webhook_max_concurrency_per_app_endpoint,
    )
    return await attempts_of(connection, deliverer, rows, now)


async def attempts_of(
    connection: asyncpg.Connection, deliverer: Deliverer, rows: Sequence[asyncpg.Record], now: datetime
) -> tuple[list[Attempt], bool]:
    """The attempts a lease statement returned (see `LEASE_STEPS`), each with a started log entry."""
    attempts: list[Attempt] = []
    others: list[Attempt] = []
    free, blocked = 0, False
    for row in rows:
        fields = dict(row)
        free, blocked = fields.pop("free"), fields.pop("blocked")
        entry_started = fields.pop("entry_started")
        fields.pop("owned", None)
        if fields["id"] is None:
            continue
        attempt = Attempt(**fields)
        attempts.append(attempt)
        if not entry_started:
            others.append(attempt)
    if others:
        await _start_other_entries(connection, deliverer, others, now)
    return attempts, len(attempts) >= free or blocked


async def _start_other_entries(
    connection: asyncpg.Connection, deliverer: Deliverer, attempts: list[Attempt], now: datetime
) -> None:
    """Give a fresh, started log entry to attempts whose entry was missing or not pending.

    An entry still `started` belonged to a worker that died mid-request: it is closed as
    interrupted and the new attempt starts a new entry (the log shows both). All or nothing (a
    savepoint inside a counted lease's transaction): a new entry is never left unreferenced.
    """
    stale = [attempt.log_entry_id for attempt in attempts if attempt.log_entry_id is not None]
    entries = [_started_log_entry(attempt, now=now) for attempt in attempts]
    async with connection.transaction():
        if stale:
            await connection.execute(_CLOSE_INTERRUPTED, stale, INTERRUPTED, now)
        await insert_rows(connection, "webhook_log_entries", list(entries[0]), entries)
        await connection.execute(
            _SET_CURRENT_ENTRIES,
            [attempt.id for attempt in attempts],
            [entry["id"] for entry in entries],
            [attempt.attempt_count for attempt in attempts],
            deliverer.worker_id,
        )
    for attempt, entry in zip(attempts, entries, strict=True):
        attempt.log_entry_id = entry["id"]
