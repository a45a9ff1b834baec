"""Dispatching in the worker: the `LISTEN` loop, and the dispatch round it and `dispatch_events` run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import asyncpg

from apps_api.delivery.context import WorkerContext
from apps_api.delivery.dispatch import BATCH_SIZE, EVENTS_CHANNEL, dispatch_batch
from apps_api.delivery.engine import pump_endpoint
from apps_api.delivery.outbox import enqueue_deliver_job
from apps_api.kit.driver import driver_connection

logger = logging.getLogger(__name__)

# Endpoints whose new deliveries the dispatching job sends itself; more get jobs of their own.
INLINE_ENDPOINTS = 8


async def dispatch_round(context: WorkerContext) -> tuple[int, dict[str, uuid.UUID]]:
    """Fan every undispatched event out into deliveries; returns (events, endpoints).

    The endpoints map each host that got deliveries to one of its new delivery ids.
    """
    handled_total = 0
    hosts: dict[str, uuid.UUID] = {}
    engine = context.deliverer.engine
    for _ in range(50):
        async with driver_connection(engine, transaction=True) as connection:
            handled, created = await dispatch_batch(
                connection, context.subscription_index, max_attempts=context.settings.max_delivery_attempts
            )
        for delivery_id, host in created:
            hosts.setdefault(host, delivery_id)
        handled_total += handled
        if handled < BATCH_SIZE:
            break
    return handled_total, hosts


async def share_endpoints(context: WorkerContext, hosts: dict[str, uuid.UUID]) -> list[str]:
    """The endpoints this process sends itself; any further one gets a job (other workers share it)."""
    for host in list(hosts)[INLINE_ENDPOINTS:]:
        await enqueue_deliver_job(context.redis, hosts[host], 0)
    return list(hosts)[:INLINE_ENDPOINTS]


class EventListener:
    """Dispatches events the moment their transaction commits: `LISTEN apps_api_events`.

    A trigger on `events` notifies on commit (migration 0003), so the hot path has no queue hop
    and no job: one dispatch round takes every undispatched event (SKIP LOCKED, so workers
    share), and the endpoints' pumps run as tasks of this process, tracked for shutdown.
    A notification missed while disconnected is covered by a catch-up round on every
    (re)connect and by the sweeper.
    """

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
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
        engine = self.context.listen_engine
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
            if not self.context.accepting:
                return
            try:
                _, hosts = await dispatch_round(self.context)
                inline = await share_endpoints(self.context, hosts)
            except Exception:
                logger.exception("dispatching events failed; trying again in 1 s")
                await asyncio.sleep(1)
                self.pending.set()
                continue
            for host in inline:
                task = asyncio.create_task(pump_endpoint(self.context, host))
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
