"""Sending attempts of deliveries: lease, sign, SSRF-guarded request, log entry, retry plan.

Shared by webhook notifications and trigger requests. PostgreSQL holds every guarantee:
- leases (`status='started'`, `locked_until`, `locked_by`) are taken by conditional UPDATEs
  with `FOR UPDATE SKIP LOCKED`, so two workers never send the same attempt at once, and a
  lapsed lease (a killed worker) lets another worker take over;
- the per-endpoint bound: a lease that adds to the endpoint's live leases counts them under
  the endpoint's advisory lock and takes no more than the bound allows; a lease that replaces
  finished ones in the statement recording them adds nothing, so a hanging receiver ties up at
  most `webhook_max_concurrency_per_endpoint` worker slots and never delays other endpoints;
- the bound per app at an endpoint (`webhook_max_concurrency_per_app_endpoint`, below the
  endpoint's): every lease, swaps included, takes an app's attempts only among the first ones
  its statement saw, as many as the app's live leases leave, and locks only those; concurrent
  leases then take the same attempts, not more of them, so the bound holds without a lock.
  Apps take turns at a busy endpoint (`walk`: after the app whose attempt finished);
- an outcome is written only while this worker still holds the lease (fencing on
  `locked_by` and `attempt_count`).

The hot path is batched: one statement records a batch of outcomes and leases into the slots
they free (a counted lease, when slots were free, is one transaction of two). The statements
are plain SQL built once and run without the ORM on connections that plan them once (the
worker's `settle_engine`): per attempt the worker pays for the HTTP request and a share of a
round trip.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.delivery import columns
from apps_api.delivery.outbox import delivery_fields, log_entry_fields
from apps_api.delivery.signing import signature_headers
from apps_api.delivery.states import AttemptStatus, DeliveryStatus
from apps_api.delivery.triggers import trigger_location
from apps_api.kit.crypto import decrypt_optional
from apps_api.kit.driver import driver_connection, insert_rows
from apps_api.models.base import utcnow
from apps_api.observability.delivery_metrics import observe_attempt
from apps_api.outbound.client import USER_AGENT, OutboundClient, Outcome, send
from apps_api.settings import Settings
from apps_api.triggers.tokens import ACCESS_TOKEN_TTL, encode_access_token

logger = logging.getLogger(__name__)

# Retries due within this many seconds are enqueued as deferred arq jobs; longer waits
# live only in PostgreSQL (`next_attempt_at`) and the sweeper enqueues them when due.
SHORT_WAIT_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
INTERRUPTED = "Interrupted: the worker stopped during the attempt; its lease lapsed."
INTERRUPTED_LAST = INTERRUPTED + " It was the last attempt: the delivery failed."
# What a log entry's request body shows in place of the app user's access token.
REDACTED = "[redacted]"


@dataclass
class Deliverer:
    """A worker's delivery machinery: database, settings, HTTP client and identity."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    client: OutboundClient
    worker_id: str
    # Where `settle()` runs its fixed statements: an engine that plans them once per connection
    # (kit/db.create_engine's `generic_plans`, the worker's); the sessionmaker's when not given.
    settle_engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        bind: AsyncEngine = self.sessionmaker.kw["bind"]
        return bind

    @property
    def lease_seconds(self) -> float:
        # A lease always outlives the request's own deadline.
        return max(self.settings.webhook_lease_seconds, self.settings.webhook_timeout + 5)


@dataclass
class Plan:
    """What happens after an attempt: the delivery's new status and, when pending, its next attempt."""

    status: DeliveryStatus
    next_attempt_at: datetime | None = None
    delay: float | None = None
    attempt_count: int = 0


@dataclass
class Attempt:
    """One leased attempt: the delivery's row as leased, its log entry, and what signing needs."""

    id: uuid.UUID
    kind: str
    app_id: uuid.UUID
    organization_id: uuid.UUID
    webhook_id: uuid.UUID | None
    installation_id: uuid.UUID | None
    target_organization_id: uuid.UUID | None
    app_user_id: uuid.UUID | None
    method: str
    endpoint_url: str
    endpoint_host: str
    channel: str
    action: str
    resource_id: str
    payload: dict[str, Any]
    signing_secret: str | None
    message_id: str
    attempt_count: int
    max_attempts: int
    next_attempt_at: datetime
    created_at: datetime
    log_entry_id: uuid.UUID | None
    # Joined at lease time: the app's current secret (None once the app is deleted) and
    # whether the installation still exists (its app user may act only while it does).
    app_secret: str | None
    # The secret a rotation replaced, while its grace period lasts: a second signature.
    app_previous_secret: str | None
    installed: bool
    # What the attempt sent, for its log entry (set when it is sent).
    request_headers: dict[str, str] | None = None
    request_body: str | None = None


@dataclass
class OutboundRequest:
    """What an attempt sends, and what its log entry shows of the body (None: no body)."""

    url: str
    headers: dict[str, str]
    content: bytes
    logged_body: str | None = None


# Round trips are what a settle costs (and each waits for a busy PostgreSQL to be scheduled), so
# each step is one statement: data-modifying CTEs in place of separate UPDATEs and INSERTs.

# An endpoint's new leases are counted one transaction at a time, so the bound below is exact.
_LOCK_ENDPOINT = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

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
_LEASE_STEPS = f"""
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
_LEASE = _COUNTED_SLOTS + _LEASE_STEPS.format(
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
    + _LEASE_STEPS.format(
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


def _started_log_entry(attempt: Attempt, *, now: datetime) -> dict[str, Any]:
    entry = log_entry_fields(delivery_fields(attempt), retry_index=attempt.attempt_count - 1)
    return {**entry, "status": AttemptStatus.STARTED, "started_at": now, "created_at": now, "updated_at": now}


async def _lease(
    connection: asyncpg.Connection, deliverer: Deliverer, *, host: str, wanted: int
) -> tuple[list[Attempt], bool]:
    """Lease up to `wanted` due (or abandoned) attempts of one endpoint and mark their log entries started.

    Never more than the endpoint's free slots across all workers. Returns the attempts and
    whether more may be due: false when fewer were due than the slots it could fill.
    The caller holds the endpoint's lock (`_LOCK_ENDPOINT`, or `_RECORD` given the host).
    """
    now = utcnow()
    rows = await connection.fetch(
        _LEASE,
        host,
        now,
        wanted,
        deliverer.settings.webhook_max_concurrency_per_endpoint,
        now + timedelta(seconds=deliverer.lease_seconds),
        deliverer.worker_id,
        INTERRUPTED_LAST,
        deliverer.settings.webhook_max_concurrency_per_app_endpoint,
    )
    return await _leased(connection, deliverer, rows, now)


async def _leased(
    connection: asyncpg.Connection, deliverer: Deliverer, rows: Sequence[asyncpg.Record], now: datetime
) -> tuple[list[Attempt], bool]:
    """The attempts a lease statement returned (see `_LEASE_STEPS`), each with a started log entry."""
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


def _webhook_request(deliverer: Deliverer, attempt: Attempt) -> OutboundRequest | str:
    # Secrets come from raw rows, encrypted (kit/crypto.py); decrypted here, inside the attempt,
    # so a secret that cannot be decrypted fails this attempt only.
    secret = decrypt_optional(attempt.app_secret)
    if secret is None:
        return "The app no longer exists."
    body: dict[str, Any] = dict(attempt.payload)
    access_token = None
    if (
        attempt.app_user_id is not None
        and attempt.installation_id is not None
        and attempt.installed
        and attempt.target_organization_id is not None
    ):
        access_token = encode_access_token(
            secret_key=deliverer.settings.secret_key,
            user_id=attempt.app_user_id,
            organization_id=attempt.target_organization_id,
            app_id=attempt.app_id,
            installation_id=attempt.installation_id,
            as_app_user=True,
        )
        # As giosg sends it: integrations call `Authorization: <token_type> <access_token>`.
        body["app_user_auth"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TOKEN_TTL.total_seconds()),
            "user_id": str(attempt.app_user_id),
            "organization_id": str(attempt.target_organization_id),
        }
    content = json.dumps(body, separators=(",", ":"), default=str).encode()
    headers = signature_headers(
        secret=secret,
        message_id=attempt.message_id,
        timestamp=int(time.time()),
        body=content,
        previous_secret=decrypt_optional(attempt.app_previous_secret),
    )
    headers["content-type"] = "application/json"
    # The log shows the bytes that were signed, not a re-serialization; only the bearer token,
    # a credential of the app user, is cut out of them (a JWT: JSON needs no escape of it).
    logged = content if access_token is None else content.replace(access_token.encode(), REDACTED.encode())
    return OutboundRequest(attempt.endpoint_url, headers, content, logged.decode())


async def _trigger_request(deliverer: Deliverer, attempt: Attempt) -> OutboundRequest | str:
    # The app's current secret (a rotation since the trigger was scheduled signs with the new one);
    # the copy kept with the delivery once the app is deleted.
    secret = decrypt_optional(attempt.app_secret or attempt.signing_secret)
    if not secret:
        return "The trigger has no signing secret."
    claims = attempt.payload.get("claims", {})

    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(value) if value else None

    # Its token and app user code are minted per attempt, in a transaction of their own.
    async with deliverer.sessionmaker() as session, session.begin():
        url = await trigger_location(
            session=session,
            settings=deliverer.settings,
            type_=str(attempt.payload.get("type")),
            trigger_url=attempt.endpoint_url,
            app_secret=secret,
            app_id=attempt.app_id,
            organization_id=uuid.UUID(claims["organization_id"]),
            installation_id=as_uuid(claims.get("installation_id")),
            actor_user_id=as_uuid(claims.get("user_id")),
            app_user_id=as_uuid(claims.get("app_user_id")),
            redirect_uri=attempt.payload.get("redirect_uri"),
        )
    headers = signature_headers(
        secret=secret,
        message_id=attempt.message_id,
        timestamp=int(time.time()),
        body=b"",
        previous_secret=decrypt_optional(attempt.app_previous_secret) if attempt.app_secret else None,
    )
    # A GET without a body; its URL's `data` JWT is not logged (a trigger may carry an app user code).
    return OutboundRequest(url, headers, b"")


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


def classify(outcome: Outcome, *, redirect_delivers: bool = False) -> tuple[bool, str | None]:
    """(success, failure reason).

    `redirect_delivers`: a trigger URL is a page (the browser flow follows its redirects), so a
    3xx answer to a server-sent trigger counts as delivered; a webhook must answer 2xx.
    """
    code = outcome.status_code
    if outcome.error is not None:
        return False, outcome.error
    assert code is not None
    if 200 <= code < 300 or (redirect_delivers and 300 <= code < 400):
        return True, None
    if 300 <= code < 400:
        return False, f"Redirect ({code}) not followed."
    if code == 410:
        return False, "Gone (410): the endpoint asked to stop; no more retries."
    return False, f"Non-2xx response: {code}."


def plan_next(
    *,
    settings: Settings,
    attempt_count: int,
    max_attempts: int,
    outcome: Outcome,
    now: datetime,
    redirect_delivers: bool = False,
) -> Plan:
    """Success, final failure, or the time of the next attempt (schedule with jitter, or Retry-After)."""
    success, _ = classify(outcome, redirect_delivers=redirect_delivers)
    if success:
        return Plan(DeliveryStatus.SUCCESSFUL, attempt_count=attempt_count)
    if outcome.status_code == 410 or attempt_count >= max_attempts:
        return Plan(DeliveryStatus.FAILED, attempt_count=attempt_count)
    delays = settings.retry_delays or (5.0,)
    delay = delays[min(attempt_count - 1, len(delays) - 1)] * random.uniform(0.9, 1.1)
    if outcome.status_code in (429, 503):
        retry_after = retry_after_seconds(outcome.header("retry-after"), now)
        if retry_after is not None:
            delay = min(max(retry_after, 1.0), MAX_RETRY_AFTER_SECONDS)
    return Plan(DeliveryStatus.PENDING, now + timedelta(seconds=delay), delay, attempt_count)


async def send_attempt(deliverer: Deliverer, attempt: Attempt) -> Outcome:
    """Sign and send one leased attempt through the SSRF-guarded client; never raises.

    Whatever goes wrong inside an attempt (a row that cannot be signed, a URL the client
    refuses) is that attempt's failure with a reason: it must never crash the endpoint's pump,
    which would cancel the other attempts in flight and leave this one to lapse forever.
    """
    try:
        request = (
            _webhook_request(deliverer, attempt)
            if attempt.kind == "webhook"
            else await _trigger_request(deliverer, attempt)
        )
    except Exception as error:
        logger.warning("delivery %s: request could not be built (%s)", attempt.id, type(error).__name__)
        return Outcome(error=f"The request could not be built: {type(error).__name__}.")
    if isinstance(request, str):
        # Nothing to retry against: the delivery fails now.
        attempt.max_attempts = attempt.attempt_count
        return Outcome(error=request)
    attempt.request_headers = {"user-agent": USER_AGENT, **request.headers}
    attempt.request_body = request.logged_body
    try:
        return await send(
            deliverer.client,
            method=attempt.method,
            url=request.url,
            headers=request.headers,
            content=request.content if attempt.method != "GET" else None,
            total_timeout=deliverer.settings.webhook_timeout,
        )
    except Exception as error:
        logger.warning("delivery %s: sending failed (%s)", attempt.id, type(error).__name__)
        return Outcome(error=f"Request failed: {type(error).__name__}.")


@dataclass
class _Recorded:
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
) -> _Recorded:
    owned = set(row["owned"] or ()) if row is not None else set()
    return _Recorded(results, plans, owned, now)


async def _record(
    connection: asyncpg.Connection,
    deliverer: Deliverer,
    results: Sequence[tuple[Attempt, Outcome]],
    *,
    lock_host: str | None,
) -> _Recorded:
    """Write outcomes (one statement, see `_RECORD`); with `lock_host`, also take its lease lock."""
    now = utcnow()
    plans, arguments = _recording(deliverer, results, now)
    row = await connection.fetchrow(_RECORD, *arguments, lock_host)
    return _recorded(results, plans, row, now)


async def _record_and_lease(
    connection: asyncpg.Connection,
    deliverer: Deliverer,
    results: Sequence[tuple[Attempt, Outcome]],
    *,
    host: str,
    wanted: int,
) -> tuple[_Recorded, list[Attempt], bool]:
    """Write outcomes and lease into the slots they free, one statement (see `_RECORD_AND_LEASE`)."""
    now = utcnow()
    plans, arguments = _recording(deliverer, results, now)
    until = now + timedelta(seconds=deliverer.lease_seconds)
    app_bound = deliverer.settings.webhook_max_concurrency_per_app_endpoint
    rows = await connection.fetch(
        _RECORD_AND_LEASE, *arguments, host, until, INTERRUPTED_LAST, wanted, app_bound
    )
    leased, more = await _leased(connection, deliverer, rows, now)
    return _recorded(results, plans, rows[0], now), leased, more


def _report(recorded: _Recorded) -> list[Plan | None]:
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


async def settle(
    deliverer: Deliverer, *, host: str, results: Sequence[tuple[Attempt, Outcome]] = (), wanted: int = 0
) -> tuple[list[Plan | None], list[Attempt], bool]:
    """Record finished attempts of an endpoint and lease up to `wanted` more, atomically.

    Returns the recorded attempts' plans (None where the lease was lost), the new leases, and
    whether more attempts may be due (see `_lease`; false when nothing was leased for lack of
    due attempts, and when `wanted` was 0). When the finished attempts free every slot wanted,
    their slots pass straight to new leases in one statement (`_RECORD_AND_LEASE`, the steady
    state of a busy endpoint); otherwise the free slots are counted under the endpoint's lock:
    BEGIN, outcomes (with the lock), lease, COMMIT. Recording alone is one statement.
    """
    recorded = _Recorded(results, [], set(), utcnow())
    leased: list[Attempt] = []
    more = False
    engine = deliverer.settle_engine or deliverer.engine
    if wanted > 0 and len(results) >= wanted:
        async with driver_connection(engine, transaction=False) as connection:
            recorded, leased, more = await _record_and_lease(
                connection, deliverer, results, host=host, wanted=wanted
            )
    elif wanted > 0:
        async with driver_connection(engine, transaction=True) as connection:
            if results:
                recorded = await _record(connection, deliverer, results, lock_host=host)
            else:
                await connection.execute(_LOCK_ENDPOINT, host)
            leased, more = await _lease(connection, deliverer, host=host, wanted=wanted)
    elif results:
        async with driver_connection(engine, transaction=False) as connection:
            recorded = await _record(connection, deliverer, results, lock_host=None)
    return _report(recorded), leased, more
