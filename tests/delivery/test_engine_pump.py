"""The delivery loop of delivery/engine.py in this process: `settle()`'s transactions and the pump's rounds.

Real PostgreSQL and loopback receivers, no worker process (the helpers are
test_webhooks_units.py's): how `settle()` takes the endpoint's lock and when it needs none; what
a pump leases, sends and records round by round, when a poke makes it lease again, when it stops
taking work (drain limit, shutdown, cancellation); how it tries recording again after a
database error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
import types
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from asyncpg.connection import LoggedQuery
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from apps_api.delivery import engine as engine_module
from apps_api.delivery import record
from apps_api.delivery.attempts import Deliverer
from apps_api.delivery.context import WorkerContext
from apps_api.delivery.engine import EndpointPump, pump_endpoint, settle
from apps_api.delivery.outbox import deliver_job_id, endpoint_host
from apps_api.kit.db import statement_cache_options
from apps_api.models import OutboundDelivery, WebhookLogEntry
from apps_api.outbound.client import Outcome, guarded_client
from apps_api.settings import Settings
from tests.delivery.test_webhooks_units import (
    _drop_jobs,
    _due,
    _endpoint,
    _forget_deliveries,
    _jobs,
    _live_leases,
    _pump_context,
    _queued,
    _statuses,
)
from tests.fixtures.delivery import World
from tests.fixtures.webhooks import Reply, eventually, receivers


def _start_pump(context: WorkerContext, host: str) -> tuple[EndpointPump, asyncio.Task[int]]:
    """A pump of `host`, registered as `pump_endpoint` registers it, running in a task."""
    pump = EndpointPump(context, host)
    context.pumps[host] = pump
    return pump, asyncio.create_task(pump.run(context.pumps))


@asynccontextmanager
async def _endpoint_locked(engine: AsyncEngine, host: str) -> AsyncIterator[None]:
    """Another worker's transaction holding the endpoint's advisory lock for the block."""
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:host, 0))"), {"host": host})
        yield
        await other.rollback()


async def _waiting_for_locks(engine: AsyncEngine) -> int:
    """Sessions of this run's database that wait for a lock (a row's or an advisory one)."""
    async with engine.connect() as connection:
        count = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(count or 0)


async def _attempt_periods(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[tuple[datetime, datetime]]:
    """When the deliveries' attempts started and were recorded (their log entries), by start."""
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(WebhookLogEntry.started_at, WebhookLogEntry.completed_at)
            .where(WebhookLogEntry.delivery_id.in_(ids), WebhookLogEntry.started_at.is_not(None))
            .order_by(WebhookLogEntry.started_at)
        )
    return [(start, end) for start, end in rows.all()]


async def test_a_counted_lease_holds_the_endpoint_lock_until_its_leases_are_committed(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Counting the free slots and taking them is one transaction under the endpoint's lock: a
    second worker's count waits until the first worker's leases are committed, then sees them, so
    two workers leasing at once never take more than the endpoint's bound between them."""
    bounded = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 2})
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/counted"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    queued = await _queued(sessionmaker, url, 5)
    ids = [delivery_id for delivery_id, _ in queued]
    host = endpoint_host(url)
    try:
        async with guarded_client(()) as client:
            a, b = (Deliverer(sessionmaker, bounded, client, f"worker-{name}") for name in "ab")
            async with engine.connect() as blocker:
                # The first due attempt's log entry held: a's lease stops there, mid-statement,
                # its slots counted and its attempts taken but not committed.
                await blocker.execute(
                    select(WebhookLogEntry.id).where(WebhookLogEntry.id == queued[0][1]).with_for_update()
                )
                first = asyncio.ensure_future(settle(a, host=host, wanted=2))

                async def a_waits() -> bool:
                    return await _waiting_for_locks(engine) == 1

                await eventually(a_waits, timeout=10, what="a's lease waiting on the log entry")
                second = asyncio.ensure_future(settle(b, host=host, wanted=2))

                async def b_waits_or_leased() -> bool:
                    return second.done() or await _waiting_for_locks(engine) == 2

                await eventually(b_waits_or_leased, timeout=10, what="b's lease waiting or done")
                assert not second.done()  # b waits for the endpoint's lock, which a holds
                await blocker.rollback()
            _, taken_by_a, _ = await asyncio.wait_for(first, 10)
            _, taken_by_b, _ = await asyncio.wait_for(second, 10)
        assert [attempt.id for attempt in taken_by_a] == ids[:2]
        assert taken_by_b == []
        assert await _live_leases(engine, host) == 2
        assert await _statuses(engine, ids) == ["started"] * 2 + ["pending"] * 3
    finally:
        await _forget_deliveries(engine, ids)


async def test_outcomes_of_more_attempts_than_slots_wanted_pass_those_slots_on_without_the_lock(
    engine: AsyncEngine, settings: Settings
) -> None:
    """`settle()` with as many outcomes as slots wanted, or more, records them and leases into
    the slots they free in one statement: it neither waits for the endpoint's lock (held here by
    another worker's counted lease) nor leases more than wanted."""
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/more"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 4)]
    host = endpoint_host(url)
    ok = Outcome(status_code=200)
    try:
        async with guarded_client(()) as client:
            a = Deliverer(sessionmaker, settings, client, "worker-a")
            _, leased, _ = await settle(a, host=host, wanted=2)
            async with _endpoint_locked(engine, host):
                passing = asyncio.ensure_future(
                    settle(a, host=host, results=[(attempt, ok) for attempt in leased], wanted=1)
                )
                done, _ = await asyncio.wait({passing}, timeout=5)
            plans, taken, more = await passing
        assert done == {passing}  # it did not wait for the lock
        assert [plan and plan.status for plan in plans] == ["successful", "successful"]
        assert [attempt.id for attempt in leased] == ids[:2]
        assert [attempt.id for attempt in taken] == ids[2:3] and more
        assert await _statuses(engine, ids) == ["successful", "successful", "started", "pending"]
    finally:
        await _forget_deliveries(engine, ids)


async def test_passing_slots_on_is_one_statement_without_a_transaction(
    settings: Settings, engine: AsyncEngine
) -> None:
    """The busy endpoint's round trip: the outcomes recorded and their slots leased again in one
    statement, with no BEGIN or COMMIT around it."""
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/passing"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 4)]
    host = endpoint_host(url)
    settle_engine = create_async_engine(
        settings.async_database_url,
        pool_size=1,
        max_overflow=0,
        connect_args=statement_cache_options(settings),
    )
    sent: list[str] = []

    def log(query: LoggedQuery) -> None:
        sent.append(query.query)

    try:
        async with guarded_client(()) as client:
            a = Deliverer(sessionmaker, settings, client, "worker-a", settle_engine=settle_engine)
            _, leased, _ = await settle(a, host=host, wanted=2)
            ok = Outcome(status_code=200)
            _, passed, _ = await settle(a, host=host, results=[(leased[0], ok)], wanted=1)
            async with settle_engine.connect() as connection:
                driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            driver.add_query_logger(log)
            plans, taken, _ = await settle(a, host=host, results=[(leased[1], ok)], wanted=1)
            await asyncio.sleep(0)  # the logger is called soon after
            driver.remove_query_logger(log)
        assert [plan and plan.status for plan in plans] == ["successful"]
        assert [attempt.id for attempt in passed + taken] == ids[2:]
        assert sent == [record._RECORD_AND_LEASE]
    finally:
        await settle_engine.dispose()
        await _forget_deliveries(engine, ids)


class _Loop:
    """The engine module's `asyncio`, counting the pump's waits for a change (one per round)."""

    def __init__(self) -> None:
        self.waits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def wait(self, *args: Any, **kwargs: Any) -> Any:
        self.waits += 1
        return await asyncio.wait(*args, **kwargs)


def _gated(count: int) -> tuple[list[threading.Event], Callable[[int], Reply]]:
    """Receiver plans whose first `count` requests each wait for their own gate."""
    gates = [threading.Event() for _ in range(count)]

    def plan(n: int) -> Reply:
        if n < count:
            gates[n].wait(30)
        return Reply()

    return gates, plan


async def test_a_pump_bounded_to_one_slot_sends_its_endpoints_attempts_one_at_a_time(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A bound of 1, poked: the first round leases the one free slot (which answers the poke),
    each finished attempt passes it on, and the pump ends once nothing is due."""
    single = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 1})
    with receivers(None) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint, 3)
        async with _pump_context(engine, single, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            pump.poke()
            assert await asyncio.wait_for(pump.run(context.pumps), 10) == 3
    assert len(receiver.requests) == 3
    assert await _statuses(engine, ids) == ["successful"] * 3
    # One at a time: each attempt started when the one before it was recorded, not earlier.
    periods = await _attempt_periods(engine, ids)
    assert len(periods) == 3
    assert all(start >= end for (_, end), (start, _) in itertools.pairwise(periods)), periods


async def test_an_endpoint_bound_configured_as_0_leases_nothing_and_ends_the_pump(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A bound below 1 (misconfigured) delivers nothing, and the pump still ends at once."""
    closed = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 0})
    with receivers(None) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, closed, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            pump.poke()
            assert await asyncio.wait_for(pump.run(context.pumps), 10) == 0
    assert receiver.requests == [] and context.pumps == {}
    assert await _statuses(engine, ids) == ["pending"]


async def test_a_pump_whose_attempts_wait_for_their_apps_slot_passes_slots_on_without_the_endpoint_lock(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A lease that came back short because the app's bound was reached leaves attempts due: the
    pump then passes each finished attempt's slot to the next one in the statement recording it,
    without counting the free slots under the endpoint's lock (another worker may hold it long)."""
    per_app = settings.model_copy(
        update={"webhook_max_concurrency_per_endpoint": 2, "webhook_max_concurrency_per_app_endpoint": 1}
    )
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint, 3)
        async with _pump_context(engine, per_app, arq_pool) as context:
            _, running = _start_pump(context, endpoint.host)
            try:
                await eventually(lambda: receiver.in_flight == 1, timeout=10, what="the first attempt")
                async with _endpoint_locked(engine, endpoint.host):
                    receiver.release.set()
                    # The endpoint stays locked until the pump has sent and recorded all three.
                    recorded = await asyncio.wait_for(asyncio.shield(running), 10)
            finally:
                receiver.release.set()
                if not running.done():
                    running.cancel()
    assert recorded == 3 and len(receiver.requests) == 3
    assert await _statuses(engine, ids) == ["successful"] * 3


async def test_a_finished_attempt_passes_its_slot_on_without_the_lock_while_another_still_runs(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """Bound 2, both slots busy: the one that finishes frees one slot, and only that one is
    leased again, in the statement recording it (another worker holds the endpoint's lock)."""
    pair = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 2})
    gates, plan = _gated(2)
    with receivers(plan) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint, 3)
        async with _pump_context(engine, pair, arq_pool) as context:
            _, running = _start_pump(context, endpoint.host)
            try:
                await eventually(lambda: receiver.in_flight == 2, timeout=10, what="both slots busy")
                async with _endpoint_locked(engine, endpoint.host):
                    gates[1].set()
                    await eventually(lambda: len(receiver.requests) == 3, timeout=10, what="the third")
                    gates[0].set()
                    recorded = await asyncio.wait_for(asyncio.shield(running), 10)
            finally:
                for gate in gates:
                    gate.set()
                if not running.done():
                    running.cancel()
    assert recorded == 3 and len(receiver.requests) == 3
    assert await _statuses(engine, ids) == ["successful"] * 3


async def test_after_a_passed_slot_finds_nothing_due_a_pump_leases_again_only_when_poked(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A finished attempt whose slot found no due attempt to pass to says nothing else is due:
    work that arrives without a poke waits for its job, even when the pump's last attempt ends."""
    pair = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 2})
    gates, plan = _gated(2)
    with receivers(plan) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint, 2)
        async with _pump_context(engine, pair, arq_pool) as context:
            _, running = _start_pump(context, endpoint.host)
            try:
                await eventually(lambda: receiver.in_flight == 2, timeout=10, what="both slots busy")
                gates[1].set()

                async def one_recorded() -> bool:
                    return "successful" in await _statuses(engine, ids)

                await eventually(one_recorded, timeout=10, what="the first outcome recorded")
                ids += await _due(engine, endpoint)  # due, but no poke
                gates[0].set()
                assert await asyncio.wait_for(running, 10) == 2
            finally:
                for gate in gates:
                    gate.set()
    assert len(receiver.requests) == 2
    assert await _statuses(engine, ids) == ["successful", "successful", "pending"]


async def test_pump_endpoint_hands_new_work_to_the_running_pump_which_leases_it_at_once(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A second job of an endpoint whose pump runs in this process pokes it and ends (0 recorded):
    the pump leases the new work into a free slot while its first attempt still hangs."""
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            first = asyncio.create_task(pump_endpoint(context, endpoint.host))
            try:
                await eventually(lambda: receiver.in_flight == 1, timeout=10, what="the first attempt")
                # The lease came back short (one due of 20 slots): only a poke leases again.
                ids += await _due(engine, endpoint)
                assert await asyncio.wait_for(pump_endpoint(context, endpoint.host), 10) == 0
                await eventually(lambda: len(receiver.requests) == 2, timeout=10, what="the new attempt")
            finally:
                receiver.release.set()
            assert await asyncio.wait_for(first, 10) == 2
    assert len(receiver.requests) == 2 and context.pumps == {}
    assert await _statuses(engine, ids) == ["successful", "successful"]


async def test_a_poke_to_a_pump_whose_slots_are_all_busy_waits_for_a_slot_to_free(
    world: World,
    engine: AsyncEngine,
    settings: Settings,
    arq_pool: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With every slot busy, a poke neither wakes the pump (no busy loop) nor starts a lease
    round (it would wait for the endpoint's lock, held here by another worker): once an attempt
    finishes, its slot passes straight to the new work."""
    single = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 1})
    loop = _Loop()
    monkeypatch.setattr(engine_module, "asyncio", loop)
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, single, arq_pool) as context:
            pump, running = _start_pump(context, endpoint.host)
            try:
                await eventually(lambda: receiver.in_flight == 1, timeout=10, what="the first attempt")
                async with _endpoint_locked(engine, endpoint.host):
                    ids += await _due(engine, endpoint)
                    waits = loop.waits
                    pump.poke()
                    for _ in range(50):  # event loop turns, not wall-clock time
                        await asyncio.sleep(0)
                    assert loop.waits == waits
                    receiver.release.set()
                    recorded = await asyncio.wait_for(asyncio.shield(running), 10)
            finally:
                receiver.release.set()
                if not running.done():
                    running.cancel()
    assert recorded == 2 and len(receiver.requests) == 2
    assert await _statuses(engine, ids) == ["successful", "successful"]


async def test_work_poked_in_while_a_pump_records_its_last_attempt_is_leased_before_it_ends(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A job that finds the pump still registered pokes it and ends: the pump, once its last
    outcome is recorded and nothing is in flight, leases again instead of ending."""
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        (first,) = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            running = asyncio.create_task(pump_endpoint(context, endpoint.host))
            try:
                await eventually(lambda: receiver.in_flight == 1, timeout=10, what="the first attempt")
                async with engine.connect() as other:
                    # The delivery's row held: recording its outcome waits.
                    await other.execute(
                        select(OutboundDelivery.id).where(OutboundDelivery.id == first).with_for_update()
                    )
                    receiver.release.set()

                    async def recording_waits() -> bool:
                        return await _waiting_for_locks(engine) == 1

                    await eventually(recording_waits, timeout=10, what="the recording waiting")
                    (second,) = await _due(engine, endpoint)
                    assert await asyncio.wait_for(pump_endpoint(context, endpoint.host), 10) == 0
                    await other.rollback()
                assert await asyncio.wait_for(running, 10) == 2
            finally:
                receiver.release.set()
    assert len(receiver.requests) == 2 and context.pumps == {}
    assert await _statuses(engine, [first, second]) == ["successful", "successful"]


async def test_a_pump_past_its_drain_limit_takes_no_new_attempt_and_hands_the_endpoint_on(
    world: World,
    engine: AsyncEngine,
    settings: Settings,
    arq_pool: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its drain limit a pump leases nothing, even poked and with attempts due: a new job
    (`drain:`) takes the endpoint's backlog on, within its own limit."""
    monkeypatch.setattr(engine_module, "DRAIN_SECONDS", 0.0)
    with receivers(None) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            pump.poke()
            assert await asyncio.wait_for(pump.run(context.pumps), 10) == 0
    drained = await _jobs(arq_pool, settings, f"drain:{endpoint.host}:")
    try:
        assert receiver.requests == [] and await _statuses(engine, ids) == ["pending"]
        assert len(drained) == 1 and context.pumps == {}
    finally:
        await _drop_jobs(arq_pool, settings, drained)


async def test_a_pump_of_a_worker_shutting_down_finishes_its_attempts_and_takes_no_new_one(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """Once the worker stops picking jobs (SIGTERM), its pumps record what is in flight, lease
    nothing more, even when poked, and hand nothing on: the sweeper finds what is due."""
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            worker = types.SimpleNamespace(allow_pick_jobs=True)
            context.arq_worker = worker  # type: ignore[assignment]
            pump, running = _start_pump(context, endpoint.host)
            try:
                await eventually(lambda: receiver.in_flight == 1, timeout=10, what="the first attempt")
                worker.allow_pick_jobs = False
                ids += await _due(engine, endpoint)
                pump.poke()
            finally:
                receiver.release.set()
            assert await asyncio.wait_for(running, 10) == 1
    drained = await _jobs(arq_pool, settings, f"drain:{endpoint.host}:")
    try:
        assert len(receiver.requests) == 1 and context.pumps == {} and drained == {}
        assert await _statuses(engine, ids) == ["successful", "pending"]
    finally:
        await _drop_jobs(arq_pool, settings, drained)


@asynccontextmanager
async def _held_open() -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """A loopback server that reads a request and never answers: (url, requested, closed by the client)."""
    requested, closed = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        requested.set()
        while await reader.read(65536):
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", requested, closed
    finally:
        server.close()


async def test_a_cancelled_pump_abandons_its_attempts_in_flight(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A pump cancelled (its job timed out, the worker stops) cancels the attempts it was sending:
    their connections close at once and their leases lapse, to be retried."""
    async with _held_open() as (url, requested, closed):
        endpoint = await _endpoint(world, url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            _, running = _start_pump(context, endpoint.host)
            await asyncio.wait_for(requested.wait(), 10)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            # Well within the webhook timeout (15 s), when an attempt left running would end.
            await asyncio.wait_for(closed.wait(), 5)
    assert context.pumps == {}
    assert await _statuses(engine, ids) == ["started"]


async def test_a_retry_due_in_seconds_is_enqueued_deferred_by_its_delay(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A 500's first retry waits the schedule's first delay (5 s, within 10 % jitter): well within
    the short wait, so its job is enqueued deferred by that delay."""
    with receivers(lambda n: Reply(500, b"oops")) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        (delivery_id,) = await _due(engine, endpoint)
        started = time.time() * 1000
        async with _pump_context(engine, settings, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            assert await asyncio.wait_for(pump.run(context.pumps), 10) == 1
        finished = time.time() * 1000
    jobs = await _jobs(arq_pool, settings, f"deliver:{delivery_id}:")
    try:
        assert await _statuses(engine, [delivery_id]) == ["pending"]
        assert list(jobs) == [deliver_job_id(delivery_id, 1)]
        assert started + 4_500 <= jobs[deliver_job_id(delivery_id, 1)] <= finished + 5_500
    finally:
        await _drop_jobs(arq_pool, settings, jobs)


class _Sleeps:
    """The engine module's `asyncio`, with its sleeps recorded instead of waited out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class _RecordingFails:
    """`engine.settle`, whose recording (a call with results) fails the first `times` calls."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.recordings = 0

    async def __call__(self, deliverer: Deliverer, *, host: str, **arguments: Any) -> Any:
        if arguments.get("results"):
            self.recordings += 1
            if self.recordings <= self.times:
                raise ConnectionRefusedError("the database is not answering")
        return await settle(deliverer, host=host, **arguments)


def _retry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == engine_module.__name__]


async def test_a_pump_records_again_after_database_errors_pausing_longer_each_time(
    world: World,
    engine: AsyncEngine,
    settings: Settings,
    arq_pool: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Four failed tries of recording (of five allowed), each logged, with pauses of 0.5, 1, 2 and
    4 seconds between them: the fifth records the outcome, and the pump ends as usual."""
    caplog.set_level(logging.WARNING, logger=engine_module.__name__)
    sleeps, failing = _Sleeps(), _RecordingFails(4)
    monkeypatch.setattr(engine_module, "asyncio", sleeps)
    monkeypatch.setattr(engine_module, "settle", failing)
    with receivers(None) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            assert await asyncio.wait_for(pump.run(context.pumps), 10) == 1
    assert failing.recordings == 5 and sleeps.delays == [0.5, 1.0, 2.0, 4.0]
    warning = f"recording attempts of {endpoint.host} failed (ConnectionRefusedError); trying again"
    assert _retry_warnings(caplog) == [warning] * 4
    assert len(receiver.requests) == 1 and context.pumps == {}
    assert await _statuses(engine, ids) == ["successful"]


async def test_a_pump_gives_up_recording_after_five_failed_tries_and_leaves_its_lease_to_lapse(
    world: World,
    engine: AsyncEngine,
    settings: Settings,
    arq_pool: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The fifth failure is raised (the job fails, and is logged as such): four warnings and
    pauses before it, no sixth try; the pump leaves the registry and the attempt stays started
    until its lease lapses (then it counts as an attempt and is retried)."""
    caplog.set_level(logging.WARNING, logger=engine_module.__name__)
    sleeps, failing = _Sleeps(), _RecordingFails(1_000)
    monkeypatch.setattr(engine_module, "asyncio", sleeps)
    monkeypatch.setattr(engine_module, "settle", failing)
    with receivers(None) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(pump.run(context.pumps), 10)
    assert failing.recordings == 5 and sleeps.delays == [0.5, 1.0, 2.0, 4.0]
    warning = f"recording attempts of {endpoint.host} failed (ConnectionRefusedError); trying again"
    assert _retry_warnings(caplog) == [warning] * 4
    assert len(receiver.requests) == 1 and context.pumps == {}
    assert await _statuses(engine, ids) == ["started"]
