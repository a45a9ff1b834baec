"""Paths that only run when something goes wrong or time passes, run on purpose.

- the hourly purge and the log retention;
- an attempt that times out (a receiver that hangs) and one that cannot connect (a closed port);
- the worker's LISTEN connection killed (pg_terminate_backend) and taken up again;
- a pooled connection whose backend died while in use: it leaves the pool, the next one works;
- the worker's jobs (tasks.py) as arq runs them: their results, the cron schedules, one endpoint's
  pump failing among others, and the shutdown's grace.

Real PostgreSQL, real receivers on 127.0.0.1, a real worker process; committed data is deleted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from arq import Worker
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import Job
from arq.utils import ms_to_datetime, to_unix_ms
from sqlalchemy import delete, select, text, update
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.delivery import engine as pumps
from apps_api.delivery import listener as listener_module
from apps_api.delivery import maintenance, sweeper, tasks
from apps_api.delivery.attempts import Deliverer
from apps_api.delivery.context import WORKER_CONTEXT, WorkerContext
from apps_api.delivery.dispatch import BATCH_SIZE
from apps_api.delivery.engine import settle
from apps_api.delivery.listener import EventListener, dispatch_round
from apps_api.delivery.outbox import build_delivery, deliver_job_id, endpoint_host
from apps_api.delivery.send import send_attempt
from apps_api.kit.db import create_engine
from apps_api.kit.driver import driver_connection
from apps_api.kit.security import new_app_secret
from apps_api.models import Event, OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.outbound.client import guarded_client
from apps_api.outbound.guard import parse_networks
from apps_api.settings import Settings
from apps_api.worker import _open_context, create_worker
from tests.fixtures.delivery import CHATS, World, chat_event, sub
from tests.fixtures.factories import Tenant
from tests.fixtures.live_server import free_port
from tests.fixtures.webhooks import Reply, eventually, receivers, worker

# --- purge and retention -------------------------------------------------------------------------


def _trigger_delivery(url: str, **fields: Any) -> tuple[OutboundDelivery, WebhookLogEntry]:
    org = uuid.uuid4()
    return build_delivery(
        kind="trigger",
        app_id=uuid.uuid4(),
        organization_id=org,
        method="GET",
        endpoint_url=url,
        channel=f"/api/v5/orgs/{org}/owned_apps/x/installations",
        action="removed",
        resource_id="installation-1",
        payload={"type": "uninstall", "claims": {"organization_id": str(org)}},
        signing_secret=new_app_secret(),
        **fields,
    )


async def test_the_purge_deletes_exactly_what_the_retention_allows(
    engine: AsyncEngine, settings: Settings
) -> None:
    days = settings.webhook_log_retention_days
    old, fresh = utcnow() - timedelta(days=days, hours=1), utcnow() - timedelta(days=days - 1)
    rows: dict[str, Any] = {}
    async with AsyncSession(engine) as session, session.begin():
        for name, status, when in (
            ("old finished", "successful", old),
            ("old failed", "failed", old),
            ("old pending", "pending", old),  # still to be delivered: kept, whatever its age
            ("fresh finished", "successful", fresh),
        ):
            delivery, entry = _trigger_delivery("http://127.0.0.1:9/purge")
            delivery.status, delivery.created_at = status, when
            delivery.completed_at = when if status != "pending" else None
            entry.status, entry.created_at = ("pending" if status == "pending" else status), when
            session.add(delivery)
            await session.flush()
            session.add(entry)
            rows[name] = (delivery.id, entry.id)
        org = uuid.uuid4()
        events = {
            "old dispatched": Event(organization_id=org, channel="/c", action="added", resource_id="1"),
            "old undispatched": Event(organization_id=org, channel="/c", action="added", resource_id="2"),
            "fresh dispatched": Event(organization_id=org, channel="/c", action="added", resource_id="3"),
        }
        for name, event in events.items():
            event.resource = {}
            event.created_at = old if name.startswith("old") else fresh
            event.dispatched_at = None if name == "old undispatched" else event.created_at
            session.add(event)
        await session.flush()
        event_ids = {name: event.id for name, event in events.items()}
    try:
        sessionmaker = async_sessionmaker(engine)
        purged = await maintenance.purge(settings=settings, sessionmaker=sessionmaker)
        async with AsyncSession(engine) as session:
            deliveries = set((await session.scalars(select(OutboundDelivery.id))).all())
            entries = set((await session.scalars(select(WebhookLogEntry.id))).all())
            kept_events = set(
                (await session.scalars(select(Event.id).where(Event.organization_id == org))).all()
            )
        # Deliveries go only when finished (their entries with them); other log entries go with
        # their day's partition (maintain_log_partitions, tests/delivery/test_log_partitions.py).
        assert rows["old pending"][1] in entries and rows["fresh finished"][1] in entries
        assert rows["old finished"][0] not in deliveries and rows["old failed"][0] not in deliveries
        assert rows["old pending"][0] in deliveries and rows["fresh finished"][0] in deliveries
        assert kept_events == {event_ids["old undispatched"], event_ids["fresh dispatched"]}
        assert purged >= 2 + 1
        assert await maintenance.purge(settings=settings, sessionmaker=sessionmaker) == 0  # nothing left
    finally:
        async with AsyncSession(engine) as session, session.begin():
            ids = [delivery_id for delivery_id, _ in rows.values()]
            await session.execute(delete(OutboundDelivery).where(OutboundDelivery.id.in_(ids)))
            await session.execute(delete(Event).where(Event.organization_id == org))


def test_the_purge_runs_every_hour(settings: Settings) -> None:
    (purge,) = [job for job in tasks.cron_jobs(settings) if job.coroutine is tasks.purge_webhook_logs]
    # One minute and second of every hour (arq: unset fields match every value).
    assert purge.hour is None and purge.day is None and len(purge.minute) == 1 and len(purge.second) == 1
    assert purge.unique


# --- attempt outcomes: timeout and connection error ----------------------------------------------


@pytest.fixture
async def deliverer(engine: AsyncEngine, settings: Settings) -> AsyncIterator[Deliverer]:
    fast = settings.model_copy(update={"webhook_timeout": 0.5, "webhook_connect_timeout": 0.5})
    async with guarded_client(
        parse_networks("127.0.0.0/8"), connect_timeout=0.5, total_timeout=0.5
    ) as client:
        yield Deliverer(async_sessionmaker(engine, expire_on_commit=False), fast, client, "paths-worker")


async def _one_attempt(deliverer: Deliverer, url: str) -> tuple[OutboundDelivery, list[WebhookLogEntry]]:
    """Commit a delivery to `url`, lease it, send it, record the outcome; return what PostgreSQL holds."""
    delivery, entry = _trigger_delivery(url, max_attempts=3)
    async with deliverer.sessionmaker() as session, session.begin():
        session.add(delivery)
        await session.flush()
        session.add(entry)
    _, leased, _ = await settle(deliverer, host=delivery.endpoint_host, wanted=1)
    assert [attempt.id for attempt in leased] == [delivery.id]
    outcome = await send_attempt(deliverer, leased[0])
    plans, _, _ = await settle(deliverer, host=delivery.endpoint_host, results=[(leased[0], outcome)])
    assert plans[0] is not None and plans[0].status == "pending"  # a retry is planned
    async with deliverer.sessionmaker() as session:
        stored = await session.get(OutboundDelivery, delivery.id)
        log = (
            await session.scalars(
                select(WebhookLogEntry)
                .where(WebhookLogEntry.delivery_id == delivery.id)
                .order_by(WebhookLogEntry.retry_index)
            )
        ).all()
        await session.execute(delete(OutboundDelivery).where(OutboundDelivery.id == delivery.id))
        await session.commit()
    assert stored is not None
    return stored, list(log)


async def test_an_attempt_that_times_out_is_logged_and_retried(deliverer: Deliverer) -> None:
    with receivers(lambda n: Reply(hang=True)) as (hanging,):
        delivery, log = await _one_attempt(deliverer, hanging.url)
        assert len(hanging.requests) == 1  # it was reached, and never answered
    assert delivery.status == "pending" and delivery.attempt_count == 1 and delivery.locked_by is None
    assert [(e.retry_index, e.status) for e in log] == [(0, "failed"), (1, "pending")]
    assert log[0].reason == "Timed out after 0.5 s (total)." and log[0].response_status_code is None


async def test_an_attempt_that_cannot_connect_is_logged_and_retried(deliverer: Deliverer) -> None:
    closed = free_port()  # bound and released: nothing listens there
    delivery, log = await _one_attempt(deliverer, f"http://127.0.0.1:{closed}/hook")
    assert delivery.status == "pending" and delivery.attempt_count == 1
    assert [(e.retry_index, e.status) for e in log] == [(0, "failed"), (1, "pending")]
    assert log[0].reason is not None and log[0].reason.startswith("ConnectError"), log[0].reason
    assert log[0].response_status_code is None


# --- LISTEN lost and regained --------------------------------------------------------------------

_LISTENERS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"


async def _listener_pids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as connection:
        return set((await connection.exec_driver_sql(_LISTENERS)).scalars().all())


@pytest.mark.subprocess
async def test_the_listener_reconnects_after_its_backend_is_killed(world: World, engine: AsyncEngine) -> None:
    """Events committed after the LISTEN connection was killed are dispatched by the new one.

    The sweeper runs only every 30 s here, and the log shows no dispatch job after the reconnect:
    the dispatch is the new listener's.
    """
    provider, org = await world.tenant("Listen provider"), await world.tenant("Listen org")
    app = await world.app(provider)
    with (
        receivers(None) as (receiver,),
        worker(APPS_API_WEBHOOK_SWEEP_INTERVAL_SECONDS="30") as running,
    ):
        await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        found: set[int] = set()

        async def listening() -> bool:
            found.update(await _listener_pids(engine))
            return bool(found)

        await eventually(listening, what="the worker's LISTEN connection")
        (first,) = found
        async with engine.connect() as connection:
            killed = (await connection.exec_driver_sql(f"SELECT pg_terminate_backend({first})")).scalar()
        assert killed is True

        async def relistening() -> bool:
            pids = await _listener_pids(engine)
            return bool(pids) and first not in pids

        await eventually(relistening, what="a new LISTEN connection")
        mark = len(running.output())
        await world.publish(chat_event(org.org_id, resource_id="after-reconnect"))
        await eventually(
            lambda: any(b"after-reconnect" in request.body for request in receiver.requests),
            what="the event after the reconnect to be delivered",
        )
        output = running.output()
    after_reconnect = output[mark:]
    assert "sweep_outbound" in output[:mark]  # arq logs the jobs it runs (the sweeper's first run)
    assert "dispatch_events" not in after_reconnect, after_reconnect[-2000:]


# --- a broken pooled connection leaves the pool -------------------------------------------------


async def _kill(engine: AsyncEngine, pid: int, victim: asyncpg.Connection) -> None:
    async with engine.connect() as connection:
        await connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    while not victim.is_closed():  # asyncpg notices the server's goodbye on its own
        await asyncio.sleep(0.01)


@pytest.fixture
async def one_connection_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The production engine (kit/db.py) with a pool of exactly one connection."""
    engine = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    yield engine
    await engine.dispose()


async def test_a_driver_connection_whose_backend_died_is_dropped_from_the_pool(
    engine: AsyncEngine, one_connection_engine: AsyncEngine
) -> None:
    pids = []
    with pytest.raises(asyncpg.InterfaceError):
        async with driver_connection(one_connection_engine, transaction=True) as connection:
            pids.append(await connection.fetchval("SELECT pg_backend_pid()"))
            await _kill(engine, pids[0], connection)
            await connection.fetchval("SELECT 1")
    # The one pooled connection was replaced: the next checkout works, on a new backend.
    async with driver_connection(one_connection_engine, transaction=False) as connection:
        pids.append(await connection.fetchval("SELECT pg_backend_pid()"))
        assert await connection.fetchval("SELECT 41 + 1") == 42
    assert pids[1] != pids[0]
    assert one_connection_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_the_sweeper_finds_undispatched_events_older_than_the_grace_only(
    connection: AsyncConnection, settings: Settings, tenant: Tenant
) -> None:
    """Called directly (the tests' 1 s sweep interval would hide which side of the grace it
    looks at): an undispatched event younger than the grace is the commit's own notification's
    to dispatch; one older than it was missed and gets a dispatch job."""

    def scoped() -> AsyncSession:
        # The test's transaction: its events are invisible to every other test's worker.
        return AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")

    async with scoped() as session:
        # Any other test's leftover undispatched event, hidden for this transaction (rolled back).
        await session.execute(
            update(Event).where(Event.dispatched_at.is_(None)).values(dispatched_at=utcnow())
        )
        event = Event(
            organization_id=tenant.org_id,
            channel=f"/api/v5/orgs/{tenant.org_id}/chats",
            action="added",
            resource_id="swept",
            resource={},
            created_at=utcnow(),
        )
        session.add(event)
        await session.commit()
        assert (await sweeper.sweep(settings=settings, sessionmaker=scoped, redis=None))["undispatched"] == 0
        event.created_at = utcnow() - sweeper.UNDISPATCHED_GRACE - timedelta(seconds=5)
        await session.commit()
        assert (await sweeper.sweep(settings=settings, sessionmaker=scoped, redis=None))["undispatched"] == 1


# --- the worker's jobs (tasks.py) ----------------------------------------------------------------

OpenContext = Callable[..., WorkerContext]


@pytest.fixture
async def open_context(settings: Settings) -> AsyncIterator[OpenContext]:
    """Worker contexts as the worker's start-up builds them (`worker._open_context`), in this process.

    `open_context(redis, **settings_overrides)`; their engines and HTTP clients are closed afterwards.
    """
    opened: list[WorkerContext] = []

    def open_one(redis: ArqRedis | None = None, **overrides: Any) -> WorkerContext:
        context = _open_context({"redis": redis}, settings.model_copy(update=overrides))
        opened.append(context)
        return context

    yield open_one
    for context in opened:
        if context.listener is not None:
            await context.listener.stop(grace=0)
        await context.deliverer.client.aclose()
        for each in (context.engine, context.settle_engine, context.listen_engine):
            await each.dispose()


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's Worker.close
async def test_finished_jobs_keep_no_result_so_the_same_job_id_can_be_enqueued_again(
    settings: Settings, arq_pool: ArqRedis, open_context: OpenContext
) -> None:
    """ARCHITECTURE.md: finished jobs keep no result (`keep_result=0`), so the same id can be
    enqueued again. Every function the worker registers, enqueued by name, and the cron jobs:
    the log partitions', which its start-up runs (docs/webhooks.md: hourly, and at start-up),
    the sweeper's (30 s apart here, so that its ticks hardly fall within the run) and the
    purge's, run at start-up here instead of at its minute of the hour: the worker's own arq
    configuration (`create_worker`), in this process and in burst mode (it stops once its queue
    is empty), on the test Redis. No Redis in the jobs' context: the sweeper and the dispatcher
    enqueue nothing for other tests' workers."""
    crons = {
        job.coroutine: job
        for job in tasks.cron_jobs(settings.model_copy(update={"webhook_sweep_interval_seconds": 30}))
    }
    partitions = crons[tasks.maintain_log_partitions]
    purge = dataclasses.replace(crons[tasks.purge_webhook_logs], run_at_startup=True)
    at_startup = [partitions, crons[tasks.sweep_outbound], purge]
    queue = f"{settings.queue_name}:burst"
    context = open_context()
    results_left: dict[str, int] = {}

    async def after_job_end(ctx: dict[str, Any]) -> None:
        # Right after arq has finished the job: whatever result it keeps is there now.
        results_left[ctx["job_id"]] = await arq_pool.exists(result_key_prefix + ctx["job_id"])

    async def run(cron_jobs: list[Any]) -> int:
        _, worker = await _run_burst(settings, context, queue, cron_jobs, after_job_end=after_job_end)
        assert worker.jobs_failed == 0
        return worker.jobs_complete

    names = [function.name for function in tasks.functions()]
    assert set(names) >= {tasks.dispatch_events.__name__, tasks.deliver_outbound.__name__}

    async def enqueue_each() -> None:
        for name in names:
            args = (None,) if name == tasks.deliver_outbound.__name__ else ()
            assert await arq_pool.enqueue_job(name, *args, _job_id=f"{queue}:{name}", _queue_name=queue)

    await enqueue_each()
    completed = await run(at_startup)
    runs = {job.name: [key for key in results_left if key.startswith(f"{job.name}:")] for job in at_startup}
    assert len(runs[partitions.name]) == 1  # at start-up
    assert all(runs.values()), runs  # each at start-up (and the sweeper at a tick that fell within)
    cron_ids = list(itertools.chain.from_iterable(runs.values()))
    assert results_left == dict.fromkeys([*cron_ids, *(f"{queue}:{name}" for name in names)], 0)
    assert completed == len(names) + len(cron_ids)
    # The same ids again, at once: arq refuses an id whose job or result is still in Redis.
    await enqueue_each()
    assert await run([]) == len(names)


async def _run_burst(
    settings: Settings,
    context: WorkerContext,
    queue: str,
    cron_jobs: list[Any],
    *,
    after_job_end: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> tuple[list[str], Worker]:
    """Run arq's Worker with the worker's own configuration (`create_worker`) in this process, in
    burst mode, on `queue` with `context` as the jobs' context: the ids of the jobs it ran (and
    `after_job_end` called after each), and the finished worker."""
    ran: list[str] = []

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx[WORKER_CONTEXT] = context

    async def job_ended(ctx: dict[str, Any]) -> None:
        ran.append(ctx["job_id"])
        if after_job_end is not None:
            await after_job_end(ctx)

    worker = create_worker(
        settings,
        queue_name=queue,
        cron_jobs=cron_jobs,
        burst=True,
        handle_signals=False,
        on_startup=on_startup,
        on_shutdown=None,
        after_job_end=job_ended,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return ran, worker


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's Worker.close
async def test_a_starting_worker_sweeps_at_once_not_at_the_sweepers_next_tick(
    settings: Settings, open_context: OpenContext
) -> None:
    """docs/configuration.md: a worker's first sweep is at its start-up (a restarted worker takes
    up what was lost at once, not up to an interval later). The sweeper's cron job with a 30 s
    interval (ticks at seconds 0 and 30), started at least 10 s before its next tick, in arq's
    Worker (burst mode: it stops once its queue is empty): a sweep runs, scheduled before that
    tick."""
    configured = settings.model_copy(update={"webhook_sweep_interval_seconds": 30})
    (sweep,) = [job for job in tasks.cron_jobs(configured) if job.coroutine is tasks.sweep_outbound]
    now = datetime.now(UTC)
    until_tick = 30 - now.second % 30 - now.microsecond / 1_000_000
    if until_tick < 10:
        await asyncio.sleep(until_tick + 0.1)  # past this tick: the next one is 30 s away
    started = datetime.now(UTC)
    next_tick = started.replace(microsecond=0) + timedelta(seconds=30 - started.second % 30)
    ran, _ = await _run_burst(configured, open_context(), f"{settings.queue_name}:startup", [sweep])
    assert ran and all(job_id.startswith(f"{sweep.name}:") for job_id in ran), ran
    scheduled = sorted(ms_to_datetime(int(job_id.rsplit(":", 1)[1])) for job_id in ran)
    assert started <= scheduled[0] < next_tick, (started, scheduled, next_tick)


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's Worker.close
async def test_a_job_whose_worker_died_under_it_runs_again_up_to_its_third_try(
    settings: Settings, arq_pool: ArqRedis, open_context: OpenContext
) -> None:
    """ARCHITECTURE.md: a job whose worker died under it (killed, or cancelled past the
    shutdown's grace) stays queued with its try counted (arq's retry key), and the next worker
    runs it again: a dispatch_events or deliver_outbound job up to its third try; a fourth is
    given up (a failed result, "max 3 retries exceeded"), its work left to the sweeper. Each
    job queued as two and as three interrupted tries left it, in arq's Worker with the worker's
    configuration (burst mode)."""
    queue = f"{settings.queue_name}:tries"
    names = (tasks.dispatch_events.__name__, tasks.deliver_outbound.__name__)
    job_ids = {(name, earlier): f"{queue}:{name}:after-{earlier}" for name in names for earlier in (2, 3)}
    for (name, earlier), job_id in job_ids.items():
        args = (None,) if name == tasks.deliver_outbound.__name__ else ()
        assert await arq_pool.enqueue_job(name, *args, _job_id=job_id, _queue_name=queue)
        await arq_pool.set(retry_key_prefix + job_id, earlier)
    try:
        ran, _ = await _run_burst(settings, open_context(), queue, [])
        assert sorted(ran) == sorted(job_ids[name, 2] for name in names)
        for name in names:
            assert await Job(job_ids[name, 2], arq_pool, _queue_name=queue).result_info() is None
            given_up = await Job(job_ids[name, 3], arq_pool, _queue_name=queue).result_info()
            assert given_up is not None and not given_up.success
            assert str(given_up.result) == "max 3 retries exceeded"
    finally:
        await arq_pool.delete(
            *(
                prefix + job_id
                for job_id in job_ids.values()
                for prefix in (result_key_prefix, retry_key_prefix)
            )
        )


def _sweep_gaps(settings: Settings, interval: int) -> set[float]:
    """The gaps between the sweeper's runs over two minutes, by arq's own schedule of its cron job."""
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    configured = settings.model_copy(update={"webhook_sweep_interval_seconds": interval})
    (sweep,) = [job for job in tasks.cron_jobs(configured) if job.coroutine is tasks.sweep_outbound]
    sweep.calculate_next(start)
    runs: list[datetime] = []
    while sweep.next_run is not None and sweep.next_run < start + timedelta(minutes=2):
        runs.append(sweep.next_run)
        sweep.calculate_next(sweep.next_run)
    return {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(runs)}


def test_the_sweeper_runs_every_interval_seconds(settings: Settings) -> None:
    """docs/configuration.md: the sweeper runs every APPS_API_WEBHOOK_SWEEP_INTERVAL_SECONDS (at
    most 30): arq's own schedule of the cron job, over two minutes, never leaves a longer gap,
    also across the minute when the interval does not divide 60. Settings accepts any int: one
    above 30 runs every 30 s (a cron's seconds cannot span a minute), 0 or below every second."""
    for interval in range(1, 31):
        gaps = _sweep_gaps(settings, interval)
        assert max(gaps) <= interval, (interval, sorted(gaps))
        if 60 % interval == 0:
            assert gaps == {interval}, (interval, sorted(gaps))
    for interval, every in ((31, 30), (45, 30), (59, 30), (60, 30), (3600, 30), (0, 1), (-1, 1)):
        assert Settings(webhook_sweep_interval_seconds=interval).webhook_sweep_interval_seconds == interval
        gaps = _sweep_gaps(settings, interval)
        assert gaps == {every}, (interval, sorted(gaps))


async def test_a_failing_pump_does_not_abandon_the_other_endpoints_of_the_dispatch(
    world: World,
    engine: AsyncEngine,
    arq_pool: ArqRedis,
    open_context: OpenContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """dispatch_events sends its first endpoints' deliveries itself. Endpoint A's pump fails (its
    lease waits on A's lock, held here, and PostgreSQL cancels the statement): the failure is
    logged, endpoint B's delivery is still sent, and the job ends normally (arq would otherwise
    run the whole dispatch again)."""
    monkeypatch.setattr(pumps, "SETTLE_TRIES", 1)  # a pump gives up at its first database error
    caplog.set_level(logging.WARNING, logger=tasks.__name__)
    provider, org = await world.tenant("Pumps provider"), await world.tenant("Pumps org")
    app = await world.app(provider)
    with receivers(None, None) as (a, b):
        for receiver in (a, b):
            await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        context = open_context(arq_pool)
        host_a = endpoint_host(a.url)
        async with engine.connect() as holder:
            await holder.begin()
            await holder.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:host, 0))"), {"host": host_a}
            )
            job = asyncio.create_task(tasks.dispatch_events({WORKER_CONTEXT: context}))
            waiting: list[int] = []

            async def lease_of_a_waits() -> bool:
                async with engine.connect() as connection:
                    waiting[:] = (
                        await connection.exec_driver_sql(
                            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        )
                    ).scalars()
                return bool(waiting) or job.done()

            await eventually(lease_of_a_waits, timeout=30, what="endpoint A's lease to wait on its lock")
            for pid in waiting:
                async with engine.connect() as connection:
                    await connection.exec_driver_sql(f"SELECT pg_cancel_backend({pid})")
            handled = await job
            await holder.rollback()
        assert handled >= 1
        assert len(a.requests) == 0 and len(b.requests) == 1
    assert f"pump of {host_a} stopped (QueryCanceledError)" in caplog.messages


class _RecordingListener(EventListener):
    """The worker's listener, remembering the grace it was stopped with."""

    grace: float | None = None

    async def stop(self, grace: float) -> None:
        self.grace = grace
        await super().stop(grace)


async def test_close_stops_the_listener_with_the_webhook_timeout_plus_5_s(
    engine: AsyncEngine, open_context: OpenContext
) -> None:
    """docs/operations.md: a worker stopping lets attempts in flight finish for up to
    APPS_API_WEBHOOK_TIMEOUT + 5 s, and its LISTEN connection closes."""
    before = await _listener_pids(engine)
    context = open_context(webhook_timeout=2.5)
    listener = context.listener = _RecordingListener(context)
    listener.start()
    mine: set[int] = set()

    async def listening() -> bool:
        mine.update(await _listener_pids(engine) - before)
        return bool(mine)

    await eventually(listening, timeout=30, what="the listener's LISTEN connection")
    await tasks.close(context)
    assert listener.grace == 2.5 + 5
    assert context.listener is None

    async def closed() -> bool:
        return not (await _listener_pids(engine)) & mine

    await eventually(closed, timeout=30, what="the LISTEN connection to close")


async def test_close_without_a_listener_completes(open_context: OpenContext) -> None:
    """A worker stopped before its start-up started the listener (or stopped twice) closes cleanly."""
    context = open_context()
    assert context.listener is None
    await tasks.close(context)
    await tasks.close(context)
    assert context.listener is None


async def test_a_deliver_job_sends_the_endpoint_of_its_own_delivery(
    settings: Settings, open_context: OpenContext
) -> None:
    """deliver_outbound(delivery_id) pumps that delivery's endpoint, not another's: the other
    delivery's id sorts before it (and is written first), so only an exact lookup finds it."""
    context = open_context()
    with receivers(None, None) as (own, other):
        ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
        async with context.sessionmaker() as session, session.begin():
            for delivery_id, receiver in zip(ids, (other, own), strict=True):
                delivery, entry = _trigger_delivery(receiver.url, id=delivery_id)
                session.add(delivery)
                await session.flush()
                session.add(entry)
        try:
            assert await tasks.deliver_outbound({WORKER_CONTEXT: context}, str(ids[1])) == "1 attempts"
            assert (len(own.requests), len(other.requests)) == (1, 0)
        finally:
            async with context.sessionmaker() as session, session.begin():
                await session.execute(delete(OutboundDelivery).where(OutboundDelivery.id.in_(ids)))


async def test_two_workers_enqueue_each_scheduled_cron_run_once(
    settings: Settings, arq_pool: ArqRedis
) -> None:
    """ARCHITECTURE.md: the sweeper is a `unique` arq cron (so are the hourly jobs): workers
    scheduling the same run enqueue it once, under an id naming the queue. arq's own scheduler
    (`Worker.run_cron`) of two workers on one queue, for the next run of each cron job."""
    queue = f"{settings.queue_name}:crons"
    now = datetime.now(UTC)
    expected = []
    for job in tasks.cron_jobs(settings):
        job.calculate_next(now)
        assert job.next_run is not None
        expected.append(f"{job.name}:{to_unix_ms(job.next_run)}")
    workers = [
        Worker(
            functions=[],
            cron_jobs=tasks.cron_jobs(settings),
            queue_name=queue,
            redis_pool=arq_pool,
            handle_signals=False,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            for job in worker.cron_jobs:
                job.calculate_next(now)
            await worker.run_cron(now + timedelta(hours=2), 0.5)  # each job's next run, once
        queued = sorted(member.decode() for member in await arq_pool.zrange(queue, 0, -1))
        assert queued == sorted(expected)
    finally:
        for member in await arq_pool.zrange(queue, 0, -1):
            await arq_pool.delete(job_key_prefix + member.decode())
        await arq_pool.delete(queue)


# --- the dispatch round and the listener (listener.py), in this process ----------------------------


async def _dispatch_leftovers(context: WorkerContext) -> None:
    """Dispatch whatever earlier tests left undispatched, so that a round sees this test's events only."""
    for _ in range(10):  # bounded: a round that miscounts must not hang the test
        if (await dispatch_round(context))[0] < 1:
            return


async def _waiting_on_locks(engine: AsyncEngine) -> list[int]:
    """Backends of this database waiting for a lock."""
    async with engine.connect() as connection:
        return list(
            (
                await connection.exec_driver_sql(
                    "SELECT pid FROM pg_locks WHERE NOT granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalars()
        )


async def _cancel_what_waits_on_a_lock(engine: AsyncEngine, what: str) -> None:
    """Wait until a backend of this database waits for a lock, then cancel its statement."""
    waiting: list[int] = []

    async def something_waits() -> bool:
        waiting[:] = await _waiting_on_locks(engine)
        return bool(waiting)

    await eventually(something_waits, timeout=30, what=what)
    for pid in waiting:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(f"SELECT pg_cancel_backend({pid})")


async def test_a_dispatch_round_takes_every_batch_and_stops_after_the_partial_one(
    world: World, open_context: OpenContext
) -> None:
    """BATCH_SIZE + 1 events: one round dispatches them all, in two transactions (a full batch,
    then the partial one that ends the round), and names their endpoint with one of its deliveries."""
    provider, org = await world.tenant("Batches provider"), await world.tenant("Batches org")
    app = await world.app(provider)
    url = "http://127.0.0.1:9/batches"  # nothing is sent: no pump runs here
    await world.webhook(provider, app, url, sub(CHATS))
    await world.install(org, app)
    context = open_context()
    await _dispatch_leftovers(context)
    await world.publish(*(chat_event(org.org_id, resource_id=f"chat-{n}") for n in range(BATCH_SIZE + 1)))
    transactions: list[None] = []  # checkouts of the pool the round takes its connections from
    sqlalchemy_event.listen(context.engine.sync_engine.pool, "checkout", lambda *_: transactions.append(None))

    handled, hosts = await dispatch_round(context)

    deliveries = await world.deliveries(app.id)
    assert handled == BATCH_SIZE + 1
    assert len(deliveries) == BATCH_SIZE + 1 and {d.resource_id for d in deliveries} == {
        f"chat-{n}" for n in range(BATCH_SIZE + 1)
    }
    assert list(hosts) == [endpoint_host(url)] and hosts[endpoint_host(url)] in {d.id for d in deliveries}
    # No third, empty transaction (nor 48 more): the partial batch was the last.
    assert len(transactions) == 2
    assert await dispatch_round(context) == (0, {})


async def test_a_dispatch_round_stops_after_50_batches(
    engine: AsyncEngine, open_context: OpenContext
) -> None:
    """One round takes at most 50 batches (50 * BATCH_SIZE events); the next one takes the rest."""
    context = open_context()
    await _dispatch_leftovers(context)
    org = uuid.uuid4()  # no installations: the events are marked dispatched, nothing is sent
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (organization_id, channel, action, resource_id, resource, created_at)"
                " SELECT :org, '/c', 'added', n::text, '{}'::jsonb, now()"
                " FROM generate_series(1, :count) AS n"
            ),
            {"org": org, "count": 50 * BATCH_SIZE + 1},
        )
    try:
        assert await dispatch_round(context) == (50 * BATCH_SIZE, {})
        async with engine.connect() as connection:
            left = await connection.scalar(
                select(Event.resource_id).where(Event.organization_id == org, Event.dispatched_at.is_(None))
            )
        assert left == str(50 * BATCH_SIZE + 1)  # the newest, in id order
        assert await dispatch_round(context) == (1, {})
    finally:
        async with engine.begin() as connection:
            await connection.execute(delete(Event).where(Event.organization_id == org))


async def test_two_dispatch_rounds_at_once_never_take_the_same_events(
    world: World, engine: AsyncEngine, open_context: OpenContext
) -> None:
    """Workers share the dispatch (SKIP LOCKED): while one round's transaction holds the events it
    took, a round at the same time takes none of them, and each event gets one delivery."""
    provider, org = await world.tenant("Rounds provider"), await world.tenant("Rounds org")
    app = await world.app(provider)
    await world.webhook(provider, app, "http://127.0.0.1:9/rounds", sub(CHATS))
    await world.install(org, app)
    context = open_context()
    await _dispatch_leftovers(context)
    await world.publish(*(chat_event(org.org_id, resource_id=f"chat-{n}") for n in range(3)))
    async with engine.connect() as holder:
        await holder.begin()
        # The first round takes the events, then waits here to write their deliveries.
        await holder.exec_driver_sql("LOCK TABLE outbound_deliveries IN SHARE MODE")
        first = asyncio.create_task(dispatch_round(context))

        async def first_waits() -> bool:
            return len(await _waiting_on_locks(engine)) == 1 or first.done()

        await eventually(first_waits, timeout=30, what="the first round to wait to write")
        second = asyncio.create_task(dispatch_round(context))

        async def second_ends_or_waits() -> bool:
            return second.done() or len(await _waiting_on_locks(engine)) == 2

        await eventually(second_ends_or_waits, timeout=30, what="the second round to end or wait")
        await holder.rollback()
    results = [await first, await second]
    assert [handled for handled, _ in results] == [3, 0]
    deliveries = await world.deliveries(app.id)
    assert sorted(d.resource_id for d in deliveries) == ["chat-0", "chat-1", "chat-2"]


async def test_dispatch_sends_the_first_8_endpoints_itself_and_enqueues_a_job_for_each_further_one(
    world: World, settings: Settings, arq_pool: ArqRedis, open_context: OpenContext
) -> None:
    """An event for 10 endpoints: the dispatch pumps 8 of them itself; each of the other 2 gets a
    deliver job for its delivery's first attempt (the id the sweeper would enqueue it under)."""
    provider, org = await world.tenant("Split provider"), await world.tenant("Split org")
    app = await world.app(provider)
    queue = settings.queue_name
    before = set(await arq_pool.zrange(queue, 0, -1))
    with receivers(*[None] * 10) as hooks:
        for receiver in hooks:
            await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        context = open_context(arq_pool)
        await _dispatch_leftovers(context)
        await world.publish(chat_event(org.org_id))
        try:
            assert await tasks.dispatch_events({WORKER_CONTEXT: context}) == 1
            queued = {member.decode() for member in set(await arq_pool.zrange(queue, 0, -1)) - before}
            jobs = {job_id for job_id in queued if job_id.startswith("deliver:")}
        finally:
            for job_id in queued:
                await arq_pool.zrem(queue, job_id)
                await arq_pool.delete(job_key_prefix + job_id)
        unsent = {endpoint_host(receiver.url) for receiver in hooks if not receiver.requests}
        assert [len(receiver.requests) for receiver in hooks].count(1) == 8 and len(unsent) == 2
    deliveries = await world.deliveries(app.id)
    assert jobs == {deliver_job_id(d.id, 0) for d in deliveries if d.endpoint_host in unsent}


async def _start_listener(engine: AsyncEngine, context: WorkerContext) -> EventListener:
    """Start the context's listener and wait for its LISTEN connection."""
    before = await _listener_pids(engine)
    listener = context.listener = EventListener(context)
    listener.start()

    async def listening() -> bool:
        return bool(await _listener_pids(engine) - before)

    await eventually(listening, timeout=30, what="the listener's LISTEN connection")
    return listener


async def test_the_listener_logs_a_failed_dispatch_and_dispatches_again_1_s_later(
    world: World, engine: AsyncEngine, open_context: OpenContext, caplog: pytest.LogCaptureFixture
) -> None:
    """A round that fails (its write cancelled here) is logged, and the listener tries again 1 s
    later (as its log says): the event is dispatched then, and the listener's own pump sends it."""
    caplog.set_level(logging.INFO, logger=listener_module.__name__)
    provider, org = await world.tenant("Retry provider"), await world.tenant("Retry org")
    app = await world.app(provider)

    def logged(start: str) -> list[logging.LogRecord]:
        return [record for record in caplog.records if record.getMessage().startswith(start)]

    with receivers(None) as (receiver,):
        await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        context = open_context()
        await _dispatch_leftovers(context)
        listener = await _start_listener(engine, context)
        async with engine.connect() as holder:
            await holder.begin()
            # The round takes the event, then waits here to write its delivery.
            await holder.exec_driver_sql("LOCK TABLE outbound_deliveries IN SHARE MODE")
            await world.publish(chat_event(org.org_id))
            await _cancel_what_waits_on_a_lock(engine, what="the round to wait to write")
            await eventually(
                lambda: bool(logged("dispatching events failed")), timeout=15, what="the failure logged"
            )
            await holder.rollback()
        await eventually(lambda: bool(receiver.requests), timeout=15, what="the event to be sent")
        await eventually(lambda: not listener.pumps, timeout=15, what="the pump to finish")
    (failure,) = logged("dispatching events failed")
    assert failure.exc_info is not None and failure.exc_info[0] is asyncpg.QueryCanceledError
    (delivery,) = await world.deliveries(app.id)
    pause = delivery.created_at.timestamp() - failure.created
    assert 1 <= pause < 2, pause
    assert not logged("pump failed")  # it succeeded


async def test_stopping_the_listener_cancels_a_pump_still_sending_after_the_grace(
    world: World, engine: AsyncEngine, open_context: OpenContext
) -> None:
    """stop(grace) lets a pump in flight run for `grace` seconds, then cancels it and returns."""
    provider, org = await world.tenant("Stop provider"), await world.tenant("Stop org")
    app = await world.app(provider)
    with receivers(lambda n: Reply(hang=True)) as (hanging,):
        await world.webhook(provider, app, hanging.url, sub(CHATS))
        await world.install(org, app)
        context = open_context(webhook_timeout=60)
        await _dispatch_leftovers(context)
        listener = await _start_listener(engine, context)
        await world.publish(chat_event(org.org_id))
        await eventually(lambda: bool(hanging.requests), timeout=30, what="the attempt in flight")
        (pump,) = listener.pumps
        # Far less than the attempt's 60 s: only a cancelled pump lets stop() return by then.
        await asyncio.wait_for(listener.stop(grace=0.5), timeout=15)
        assert pump.cancelled()


async def test_the_listener_logs_a_pump_that_fails(
    world: World,
    engine: AsyncEngine,
    open_context: OpenContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pump the listener started fails (its lease waits on the endpoint's lock, held here, and
    PostgreSQL cancels the statement): the failure is logged with its error."""
    monkeypatch.setattr(pumps, "SETTLE_TRIES", 1)  # a pump gives up at its first database error
    caplog.set_level(logging.INFO, logger=listener_module.__name__)
    provider, org = await world.tenant("Failing pump provider"), await world.tenant("Failing pump org")
    app = await world.app(provider)

    def failures() -> list[logging.LogRecord]:
        return [record for record in caplog.records if record.getMessage().startswith("pump failed")]

    with receivers(None) as (receiver,):
        await world.webhook(provider, app, receiver.url, sub(CHATS))
        await world.install(org, app)
        context = open_context()
        await _dispatch_leftovers(context)
        listener = await _start_listener(engine, context)
        async with engine.connect() as holder:
            await holder.begin()
            await holder.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:host, 0))"),
                {"host": endpoint_host(receiver.url)},
            )
            await world.publish(chat_event(org.org_id))
            await _cancel_what_waits_on_a_lock(engine, what="the pump's lease to wait on the lock")
            await eventually(lambda: not listener.pumps, timeout=15, what="the pump to end")
            await holder.rollback()
        assert receiver.requests == []
    (failure,) = failures()
    assert failure.exc_info is not None and failure.exc_info[0] is asyncpg.QueryCanceledError


class _Gate:
    """A TCP port in front of PostgreSQL that refuses connections (accepts and closes them) until opened."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.opened = False
        self.refused: list[float] = []  # when each refused connection came (time.monotonic())

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = self.url.query.get("host")
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{self.url.port or 5432}")
        return await asyncio.open_connection(self.url.host or "127.0.0.1", self.url.port or 5432)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.opened:
            self.refused.append(time.monotonic())
            writer.close()
            return
        upstream_reader, upstream_writer = await self._upstream()

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
        )


async def test_the_listener_tries_again_every_second_until_postgresql_takes_its_connection(
    engine: AsyncEngine,
    direct_database_url: str,
    open_context: OpenContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A LISTEN connection that cannot be made (PostgreSQL restarting: here a port that accepts
    and closes) is logged and tried again 1 s later, as the log says, until it is made."""
    caplog.set_level(logging.INFO, logger=listener_module.__name__)
    gate = _Gate(make_url(direct_database_url))
    server = await asyncio.start_server(gate.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    listen_url = make_url(direct_database_url).set(host="127.0.0.1", port=port, query={})
    before = await _listener_pids(engine)
    context = open_context(listen_database_url=listen_url.render_as_string(hide_password=False))
    listener = context.listener = EventListener(context)
    try:
        listener.start()
        await eventually(lambda: len(gate.refused) >= 3, timeout=15, what="three refused connections")
        gate.opened = True

        async def listening() -> bool:
            return bool(await _listener_pids(engine) - before)

        await eventually(listening, timeout=15, what="the LISTEN connection once PostgreSQL takes it")
    finally:
        await listener.stop(grace=0)
        server.close()
        await server.wait_closed()
    gaps = [later - earlier for earlier, later in itertools.pairwise(gate.refused[:3])]
    assert all(1 <= gap < 2 for gap in gaps), gaps  # neither a busy loop nor a longer pause
    lost = [r for r in caplog.records if r.getMessage().startswith("event notifications lost")]
    assert len(lost) >= 3
