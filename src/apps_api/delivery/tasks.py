"""arq jobs of the delivery pipeline: dispatcher, deliverer, sweeper and purge.

Redis only makes work happen promptly; PostgreSQL holds all of it. The sweeper finds
whatever Redis lost (a restart without persistence), whatever a killed worker left behind
(lapsed leases) and events whose dispatch job was never enqueued (an API process that died
right after its commit), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from arq import cron
from arq.worker import func
from sqlalchemy import ColumnElement, Delete, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps_api.delivery import follow, health, partitions
from apps_api.delivery.attempts import Attempt, Deliverer
from apps_api.delivery.dispatch import BATCH_SIZE, EVENTS_CHANNEL, SubscriptionIndex, dispatch_batch
from apps_api.delivery.engine import settle
from apps_api.delivery.outbox import DELIVER_JOB, deliver_job_id
from apps_api.delivery.retry import SHORT_WAIT_SECONDS, Plan
from apps_api.delivery.send import send_attempt
from apps_api.delivery.states import FINISHED, DeliveryStatus
from apps_api.kit.driver import driver_connection
from apps_api.kit.queue import enqueue
from apps_api.models import AppInstallationRemoval, Event, OutboundDelivery
from apps_api.models.base import utcnow
from apps_api.observability.delivery_metrics import LOG_PARTITION_FAILURES, LOG_PARTITIONS_AHEAD
from apps_api.outbound.client import Outcome, guarded_client
from apps_api.outbound.guard import parse_networks
from apps_api.settings import Settings

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 1000
PURGE_BATCH = 5000
# Events left undispatched this long are the sweeper's (their job was lost or never enqueued).
UNDISPATCHED_GRACE = timedelta(seconds=2)
# A pump takes new attempts of its endpoint for at most this long, well within the job timeout,
# then hands the endpoint's remaining backlog to a new job.
DRAIN_SECONDS = 30.0
# Endpoints whose new deliveries the dispatching job sends itself; more get jobs of their own.
INLINE_ENDPOINTS = 8
# How often a pump tries to record outcomes before it gives up (their leases then lapse).
SETTLE_TRIES = 5


def startup(ctx: dict[str, Any]) -> None:
    """Create the worker's delivery machinery once (called from the worker's `on_startup`).

    arq hands every job a shallow copy of the worker's context, so anything a job stores in
    `ctx` is lost when the job ends: the HTTP client (its connection pool and TLS context) and
    the matcher cache must live in the worker's own context, created here.
    """
    _deliverer(ctx)
    ctx.setdefault("subscription_index", SubscriptionIndex())
    ctx.setdefault("pumps", {})
    listener = EventListener(ctx)
    ctx["event_listener"] = listener
    listener.start()


def _deliverer(ctx: dict[str, Any]) -> Deliverer:
    deliverer: Deliverer | None = ctx.get("deliverer")
    if deliverer is None:
        settings: Settings = ctx["settings"]
        deliverer = Deliverer(
            sessionmaker=ctx["sessionmaker"],
            settings=settings,
            client=guarded_client(
                parse_networks(settings.outbound_allow_networks),
                connect_timeout=settings.webhook_connect_timeout,
                total_timeout=settings.webhook_timeout,
            ),
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            settle_engine=ctx.get("settle_engine"),
        )
        ctx["deliverer"] = deliverer
    return deliverer


async def close(ctx: dict[str, Any]) -> None:
    """Stop the event listener, let its pumps finish, release the HTTP client (worker shutdown)."""
    listener: EventListener | None = ctx.pop("event_listener", None)
    if listener is not None:
        await listener.stop(grace=ctx["settings"].webhook_timeout + 5)
    deliverer: Deliverer | None = ctx.pop("deliverer", None)
    if deliverer is not None:
        await deliverer.client.aclose()


async def _enqueue_delivery(
    ctx: dict[str, Any], delivery_id: uuid.UUID, attempt_count: int, **options: Any
) -> None:
    await enqueue(
        ctx.get("redis"),
        DELIVER_JOB,
        str(delivery_id),
        _job_id=deliver_job_id(delivery_id, attempt_count),
        **options,
    )


async def _enqueue_per_endpoint(ctx: dict[str, Any], due: list[tuple[uuid.UUID, int, str]]) -> None:
    """Enqueue one delivery job per endpoint: the job's pump takes every due attempt of it."""
    seen: set[str] = set()
    for delivery_id, attempt_count, host in due:
        if host in seen:
            continue
        seen.add(host)
        await _enqueue_delivery(ctx, delivery_id, attempt_count)


@dataclass
class _PumpState:
    """A pump's attempts between rounds."""

    bound: int
    deadline: float
    in_flight: dict[asyncio.Task[Outcome], Attempt] = field(default_factory=dict)
    finished: list[tuple[Attempt, Outcome]] = field(default_factory=list)
    recorded: int = 0
    # Whether the endpoint may have due attempts this pump has not seen: after a lease that
    # came back short, only a poke (new work, a retry's job, the sweeper) says so, and
    # recording then costs one statement instead of a lease round.
    more: bool = True
    # After a lease that left attempts due for want of their app's slots (the bound per app) or
    # of the endpoint's (other workers hold them), each finished attempt passes its slot on in
    # the statement recording it; only a poke counts the free slots again.
    passing: bool = False


class EndpointPump:
    """Keeps one endpoint's free slots busy with its due attempts, within this worker process.

    Every round leases as many due attempts as the endpoint has free slots (one transaction,
    the bound counted across all workers), sends them concurrently, and records whatever has
    finished in one transaction. Work that arrives while the pump runs is handed to it with
    `poke()`, so one endpoint has one pump per process and no job waits for a slot.
    """

    def __init__(self, ctx: dict[str, Any], deliverer: Deliverer, host: str) -> None:
        self.ctx = ctx
        self.deliverer = deliverer
        self.host = host
        self.poked = False
        self.wakeup = asyncio.Event()

    def poke(self) -> None:
        self.poked = True
        self.wakeup.set()

    def _accepting(self) -> bool:
        # A worker that is shutting down takes no new work (SIGTERM: finish what runs, nothing more).
        return bool(getattr(self.ctx.get("arq_worker"), "allow_pick_jobs", True))

    def _taking(self, deadline: float) -> bool:
        return time.monotonic() < deadline and self._accepting()

    async def run(self, pumps: dict[str, EndpointPump]) -> int:
        """Pump until the endpoint has nothing due (or the drain limit); returns the attempts recorded."""
        bound = max(1, self.deliverer.settings.webhook_max_concurrency_per_endpoint)
        state = _PumpState(bound=bound, deadline=time.monotonic() + DRAIN_SECONDS)
        try:
            while await self._round(state, pumps):
                pass
        finally:
            pumps.pop(self.host, None)
            # Only on an error or cancellation: the leases of these attempts lapse and are retried.
            for task in state.in_flight:
                task.cancel()
        if time.monotonic() >= state.deadline and getattr(
            self.ctx.get("arq_worker"), "allow_pick_jobs", True
        ):
            # Drain limit reached: hand the rest of the endpoint's backlog to a new job.
            job_id = f"drain:{self.host}:{time.time()}"
            await enqueue(self.ctx.get("redis"), DELIVER_JOB, None, self.host, _job_id=job_id)
        return state.recorded

    async def _round(self, state: _PumpState, pumps: dict[str, EndpointPump]) -> bool:
        """Record what finished, lease the free slots, wait for a change; false once the pump is done."""
        taking = self._taking(state.deadline)
        wanted = self._wanted(state, taking)
        if state.finished or wanted > 0:
            await self._record_and_lease(state, wanted)
        if not state.in_flight:
            if self.poked and taking:
                return True
            # No await between the last look and leaving the registry: a poke either
            # reached this loop or finds no pump and starts one.
            pumps.pop(self.host, None)
            return False
        await self._wait(state, taking)
        return True

    def _wanted(self, state: _PumpState, taking: bool) -> int:
        """Free slots to lease now: none after a short lease until a poke says more is due."""
        wanted = state.bound - len(state.in_flight) if taking and (state.more or self.poked) else 0
        if state.passing and not self.poked:
            wanted = min(wanted, len(state.finished))
        if wanted > 0:
            self.poked = False
            self.wakeup.clear()
        return wanted

    async def _record_and_lease(self, state: _PumpState, wanted: int) -> None:
        plans, leased, found_more = await self._settle(state.finished, wanted)
        if wanted > 0:
            state.more = found_more
            state.passing = found_more and (state.passing or len(leased) < wanted)
        state.recorded += len(state.finished)
        await self._schedule_retries(state.finished, plans)
        state.finished = []
        for attempt in leased:
            state.in_flight[asyncio.create_task(send_attempt(self.deliverer, attempt))] = attempt

    async def _wait(self, state: _PumpState, taking: bool) -> None:
        """Until an attempt finishes or, with a free slot, a poke arrives."""
        waiting: set[asyncio.Future[Any]] = set(state.in_flight)
        waiter = None
        if taking and len(state.in_flight) < state.bound:
            waiter = asyncio.ensure_future(self.wakeup.wait())
            waiting.add(waiter)
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if waiter is not None:
            waiter.cancel()
        state.finished = [
            (state.in_flight.pop(task), _outcome(task)) for task in list(state.in_flight) if task in done
        ]

    async def _settle(
        self, finished: list[tuple[Attempt, Outcome]], wanted: int
    ) -> tuple[list[Plan | None], list[Attempt], bool]:
        """`settle()`, tried again on a database error while the attempts in flight keep running.

        Giving up (re-raising) only after several tries: the leases then lapse and count as attempts.
        """
        for attempt in range(SETTLE_TRIES):
            try:
                return await settle(self.deliverer, host=self.host, results=finished, wanted=wanted)
            except Exception as error:
                if attempt + 1 == SETTLE_TRIES:
                    raise
                logger.warning(
                    "recording attempts of %s failed (%s); trying again", self.host, type(error).__name__
                )
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    async def _schedule_retries(
        self, finished: list[tuple[Attempt, Outcome]], plans: list[Plan | None]
    ) -> None:
        for (attempt, _), plan in zip(finished, plans, strict=True):
            due_soon = plan is not None and plan.delay is not None and plan.delay <= SHORT_WAIT_SECONDS
            if plan is not None and plan.status == DeliveryStatus.PENDING and due_soon:
                await _enqueue_delivery(self.ctx, attempt.id, plan.attempt_count, _defer_by=plan.delay)


def _outcome(task: asyncio.Task[Outcome]) -> Outcome:
    """A finished attempt's outcome; `send_attempt` never raises, but a pump must not rely on it."""
    if task.cancelled():
        return Outcome(error="The attempt was cancelled.")
    error = task.exception()
    if error is not None:
        return Outcome(error=f"Request failed: {type(error).__name__}.")
    return task.result()


async def pump_endpoint(ctx: dict[str, Any], host: str) -> int:
    """Run this process's pump of `host`, or hand the work to the one already running."""
    pumps: dict[str, EndpointPump] = ctx["pumps"]
    running = pumps.get(host)
    if running is not None:
        running.poke()
        return 0
    pump = EndpointPump(ctx, _deliverer(ctx), host)
    pumps[host] = pump
    return await pump.run(pumps)


async def _dispatch(ctx: dict[str, Any]) -> tuple[int, dict[str, uuid.UUID]]:
    """Fan every undispatched event out into deliveries; returns (events, endpoints).

    The endpoints map each host that got deliveries to one of its new delivery ids.
    """
    settings: Settings = ctx["settings"]
    index: SubscriptionIndex = ctx["subscription_index"]
    handled_total = 0
    hosts: dict[str, uuid.UUID] = {}
    engine = _deliverer(ctx).engine
    for _ in range(50):
        async with driver_connection(engine, transaction=True) as connection:
            handled, created = await dispatch_batch(
                connection, index, max_attempts=settings.max_delivery_attempts
            )
        for delivery_id, host in created:
            hosts.setdefault(host, delivery_id)
        handled_total += handled
        if handled < BATCH_SIZE:
            break
    return handled_total, hosts


async def _share_endpoints(ctx: dict[str, Any], hosts: dict[str, uuid.UUID]) -> list[str]:
    """The endpoints this process sends itself; any further one gets a job (other workers share it)."""
    for host in list(hosts)[INLINE_ENDPOINTS:]:
        await _enqueue_delivery(ctx, hosts[host], 0)
    return list(hosts)[:INLINE_ENDPOINTS]


async def dispatch_events(ctx: dict[str, Any]) -> int:
    """Fan every undispatched event out into deliveries, then send them (the sweeper's job).

    The deliveries of the first few endpoints are sent by this job (no second queue hop).
    """
    handled, hosts = await _dispatch(ctx)
    inline = await _share_endpoints(ctx, hosts)
    if inline:
        # One endpoint's pump failing must not abandon the others (gather would raise at once).
        results = await asyncio.gather(*(pump_endpoint(ctx, host) for host in inline), return_exceptions=True)
        for host, result in zip(inline, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("pump of %s stopped (%s)", host, type(result).__name__)
    return handled


class EventListener:
    """Dispatches events the moment their transaction commits: `LISTEN apps_api_events`.

    A trigger on `events` notifies on commit (migration 0003), so the hot path has no queue hop
    and no job: one dispatch round takes every undispatched event (SKIP LOCKED, so workers
    share), and the endpoints' pumps run as tasks of this process, tracked for shutdown.
    A notification missed while disconnected is covered by a catch-up round on every
    (re)connect and by the sweeper.
    """

    def __init__(self, ctx: dict[str, Any]) -> None:
        self.ctx = ctx
        self.pending = asyncio.Event()
        self.pumps: set[asyncio.Task[int]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._dispatch_loop())]

    def _notified(self, *_: Any) -> None:
        self.pending.set()

    async def _listen(self) -> None:
        # A session of its own (APPS_API_LISTEN_DATABASE_URL): LISTEN cannot go through
        # PgBouncer's transaction pooling, and it must not hold a slot of the worker's pool.
        engine = self.ctx.get("listen_engine") or _deliverer(self.ctx).engine
        while True:
            try:
                async with engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver: asyncpg.Connection = raw.driver_connection
                    try:
                        lost = asyncio.Event()
                        driver.add_termination_listener(lambda *_, lost=lost: lost.set())
                        await driver.add_listener(EVENTS_CHANNEL, self._notified)
                        self.pending.set()  # catch up on what was committed while not listening
                        while not driver.is_closed():
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(lost.wait(), 5)
                    finally:
                        # Never hand a listening connection back to the pool.
                        await connection.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # PostgreSQL restarting: the sweeper covers the gap.
                logger.warning("event notifications lost (%s); listening again in 1 s", type(error).__name__)
            await asyncio.sleep(1)

    async def _dispatch_loop(self) -> None:
        while True:
            await self.pending.wait()
            self.pending.clear()
            if not getattr(self.ctx.get("arq_worker"), "allow_pick_jobs", True):
                return
            try:
                _, hosts = await _dispatch(self.ctx)
                inline = await _share_endpoints(self.ctx, hosts)
            except Exception:
                logger.exception("dispatching events failed; trying again in 1 s")
                await asyncio.sleep(1)
                self.pending.set()
                continue
            for host in inline:
                task = asyncio.create_task(pump_endpoint(self.ctx, host))
                self.pumps.add(task)
                task.add_done_callback(self._pump_done)

    def _pump_done(self, task: asyncio.Task[int]) -> None:
        self.pumps.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("pump failed; its leases lapse and are retried", exc_info=task.exception())

    async def stop(self, grace: float) -> None:
        """Stop listening and dispatching; let running pumps finish their attempts (bounded)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pumps:
            _, unfinished = await asyncio.wait(set(self.pumps), timeout=grace)
            for pump in unfinished:
                pump.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)


async def deliver_outbound(ctx: dict[str, Any], delivery_id: str | None, host: str | None = None) -> str:
    """Send the due attempts of a delivery's endpoint (or of `host`) while they last."""
    if host is None and delivery_id is not None:
        sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
        async with sessionmaker() as session:
            host = await session.scalar(
                select(OutboundDelivery.endpoint_host).where(OutboundDelivery.id == uuid.UUID(delivery_id))
            )
    if host is None:
        return "skipped"
    recorded = await pump_endpoint(ctx, host)
    return f"{recorded} attempts" if recorded else "skipped"


async def sweep_outbound(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-enqueue what Redis may have lost: undispatched events, due deliveries, lapsed leases."""
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    now = utcnow()
    await _disable_failing(ctx, now)
    await _follow_webhooks(ctx, now)
    async with sessionmaker() as session:
        undispatched = await session.scalar(
            select(Event.id)
            .where(Event.dispatched_at.is_(None), Event.created_at < now - UNDISPATCHED_GRACE)
            .limit(1)
        )
        due = (
            await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.attempt_count, OutboundDelivery.endpoint_host)
                .where(
                    OutboundDelivery.status == DeliveryStatus.PENDING, OutboundDelivery.next_attempt_at <= now
                )
                .order_by(OutboundDelivery.next_attempt_at)
                .limit(SWEEP_LIMIT)
            )
        ).all()
        stale = (
            await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.attempt_count, OutboundDelivery.endpoint_host)
                .where(OutboundDelivery.status == DeliveryStatus.STARTED, OutboundDelivery.locked_until < now)
                .limit(SWEEP_LIMIT)
            )
        ).all()
    if undispatched is not None:
        job_id = f"dispatch-sweep:{ctx['settings'].queue_name}:{int(time.time())}"
        await enqueue(ctx.get("redis"), "dispatch_events", _job_id=job_id)
    # Lapsed leases first: each frees a slot of its endpoint.
    await _enqueue_per_endpoint(ctx, [(row[0], row[1], row[2]) for row in [*stale, *due]])
    return {"undispatched": int(undispatched is not None), "due": len(due), "stale": len(stale)}


async def _disable_failing(ctx: dict[str, Any], now: datetime) -> None:
    """Disable the webhooks that only fail, and end the waiting deliveries of disabled or deleted ones."""
    settings: Settings = ctx["settings"]
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    async with sessionmaker() as session, session.begin():
        disabled = await health.disable_failing_webhooks(
            session=session,
            now=now,
            after_days=settings.webhook_disable_after_days,
            min_failures=settings.webhook_disable_min_failures,
        )
        await health.end_deliveries_of_disabled(session=session, now=now, limit=SWEEP_LIMIT)
    if disabled:
        logger.warning("disabled %d webhooks whose every attempt failed", len(disabled))


async def _follow_webhooks(ctx: dict[str, Any], now: datetime) -> None:
    """Move waiting deliveries whose webhook's URL changed under them, then start their new endpoints."""
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    async with sessionmaker() as session, session.begin():
        hosts = await follow.move_stale_deliveries(session=session, now=now, limit=SWEEP_LIMIT)
    for host in hosts:
        await enqueue(ctx.get("redis"), DELIVER_JOB, None, host, _job_id=f"moved:{host}:{time.time()}")


async def maintain_log_partitions(ctx: dict[str, Any]) -> dict[str, int]:
    """Create the log's daily partitions ahead of time and drop those past retention (hourly)."""
    settings: Settings = ctx["settings"]
    now = utcnow()
    try:
        async with driver_connection(ctx["engine"], transaction=False) as connection:
            done = await partitions.maintain(
                connection, now=now, retention_days=settings.webhook_log_retention_days
            )
            ahead = await partitions.days_ahead(connection, now=now)
    except Exception:
        # Alert on it: after AHEAD_DAYS failed days, new entries land in the DEFAULT partition.
        LOG_PARTITION_FAILURES.inc()
        logger.exception("webhook log partition maintenance failed; retrying in an hour")
        raise
    LOG_PARTITIONS_AHEAD.set(ahead)
    if done.created or done.dropped or done.moved_rows or done.purged_default_rows:
        logger.info(
            "webhook log partitions: created %s, dropped %s, %d rows moved out of and %d purged from DEFAULT",
            done.created,
            done.dropped,
            done.moved_rows,
            done.purged_default_rows,
        )
    return {"created": len(done.created), "dropped": len(done.dropped), "days_ahead": ahead}


def purge_batches(cutoff: datetime) -> list[tuple[str, Delete]]:
    """One batch's DELETE per table the purge empties of rows older than `cutoff` (bench explains them)."""
    conditions: list[tuple[Any, ColumnElement[bool]]] = [
        (
            OutboundDelivery,
            (OutboundDelivery.completed_at < cutoff) & OutboundDelivery.status.in_(FINISHED),
        ),
        (Event, (Event.created_at < cutoff) & Event.dispatched_at.is_not(None)),
        # A removal matters only to events written before it: kept while one may be undispatched
        # (an hour of margin for the writers' clocks, which set `created_at`).
        (
            AppInstallationRemoval,
            (AppInstallationRemoval.removed_at < cutoff)
            & ~exists().where(
                Event.dispatched_at.is_(None),
                Event.created_at < AppInstallationRemoval.removed_at + timedelta(hours=1),
            ),
        ),
    ]
    return [
        (
            table.__tablename__,
            delete(table).where(
                table.id.in_(select(table.id).where(condition).limit(PURGE_BATCH).scalar_subquery())
            ),
        )
        for table, condition in conditions
    ]


async def purge_webhook_logs(ctx: dict[str, Any]) -> int:
    """Delete finished deliveries and dispatched events older than the retention.

    Log entries go by whole partitions (`maintain_log_partitions`).
    """
    settings: Settings = ctx["settings"]
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    cutoff = utcnow() - timedelta(days=settings.webhook_log_retention_days)
    deleted = 0
    for _table, statement in purge_batches(cutoff):
        while True:
            async with sessionmaker() as session, session.begin():
                result = await session.execute(statement)
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < PURGE_BATCH:
                break
    if deleted:
        logger.info("purged %s webhook log rows older than %s", deleted, cutoff)
    return deleted


def functions() -> list[Any]:
    # keep_result=0: a finished job leaves no key behind, so the same job id can be enqueued again.
    return [
        func(dispatch_events, keep_result=0, max_tries=3),
        func(deliver_outbound, keep_result=0, max_tries=3, timeout=300),
        func(sweep_outbound, keep_result=0),
        func(purge_webhook_logs, keep_result=0),
        func(maintain_log_partitions, keep_result=0),
    ]


def cron_jobs(settings: Settings) -> list[Any]:
    interval = max(1, min(settings.webhook_sweep_interval_seconds, 30))
    # A unique cron job's id is `<name>:<time>` and arq's job keys are global: named after the
    # queue, deployments (or test runs) sharing a Redis never skip each other's runs.
    return [
        cron(
            sweep_outbound,
            name=f"cron:{settings.queue_name}:sweep_outbound",
            second=set(range(0, 60, interval)),
            run_at_startup=True,
            unique=True,
            keep_result=0,
        ),
        # Partitions first (at start-up too: a worker that was down catches up), then the purge.
        cron(
            maintain_log_partitions,
            name=f"cron:{settings.queue_name}:maintain_log_partitions",
            minute={15},
            second={0},
            run_at_startup=True,
            unique=True,
            keep_result=0,
        ),
        cron(
            purge_webhook_logs,
            name=f"cron:{settings.queue_name}:purge_webhook_logs",
            minute={17},
            second={30},
            unique=True,
            keep_result=0,
        ),
    ]
