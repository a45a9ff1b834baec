"""Paths that only run when something goes wrong or time passes, run on purpose.

- the hourly purge and the log retention;
- an attempt that times out (a receiver that hangs) and one that cannot connect (a closed port);
- the worker's LISTEN connection killed (pg_terminate_backend) and taken up again;
- a pooled connection whose backend died while in use: it leaves the pool, the next one works.

Real PostgreSQL, real receivers on 127.0.0.1, a real worker process; committed data is deleted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.delivery import maintenance, sweeper, tasks
from apps_api.delivery.attempts import Deliverer
from apps_api.delivery.engine import settle
from apps_api.delivery.outbox import build_delivery
from apps_api.delivery.send import send_attempt
from apps_api.kit.db import create_engine
from apps_api.kit.driver import driver_connection
from apps_api.kit.security import new_app_secret
from apps_api.models import Event, OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.outbound.client import guarded_client
from apps_api.outbound.guard import parse_networks
from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub
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
