"""The delivery loop: per endpoint, lease due attempts, send them, record their outcomes.

One pump per endpoint and process (`EndpointPump`) runs it; each round is one `settle()` (the
outcomes of what finished, fenced: record.py; new leases into the free slots: lease.py), then
`send.send_attempt()` for each new lease (signed, through the SSRF guard), and the delivery's
next state is `retry.plan_next()`'s. Shared by webhook notifications and trigger requests.

PostgreSQL holds every guarantee:
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

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps_api.delivery import lease, record
from apps_api.delivery.attempts import Attempt, Deliverer
from apps_api.delivery.outbox import enqueue_deliver_job, enqueue_endpoint_job
from apps_api.delivery.retry import SHORT_WAIT_SECONDS, Plan
from apps_api.delivery.send import send_attempt
from apps_api.delivery.states import DeliveryStatus
from apps_api.kit.driver import driver_connection
from apps_api.models.base import utcnow
from apps_api.outbound.client import Outcome

if TYPE_CHECKING:  # the context holds the pumps
    from apps_api.delivery.context import WorkerContext

logger = logging.getLogger(__name__)

# A pump takes new attempts of its endpoint for at most this long, well within the job timeout,
# then hands the endpoint's remaining backlog to a new job.
DRAIN_SECONDS = 30.0
# How often a pump tries to record outcomes before it gives up (their leases then lapse).
SETTLE_TRIES = 5


async def settle(
    deliverer: Deliverer, *, host: str, results: Sequence[tuple[Attempt, Outcome]] = (), wanted: int = 0
) -> tuple[list[Plan | None], list[Attempt], bool]:
    """Record finished attempts of an endpoint and lease up to `wanted` more, atomically.

    Returns the recorded attempts' plans (None where the lease was lost), the new leases, and
    whether more attempts may be due (see `lease.lease`; false when nothing was leased for lack of
    due attempts, and when `wanted` was 0). When the finished attempts free every slot wanted,
    their slots pass straight to new leases in one statement (`record.record_and_lease`, the steady
    state of a busy endpoint); otherwise the free slots are counted under the endpoint's lock:
    BEGIN, outcomes (with the lock), lease, COMMIT. Recording alone is one statement.
    """
    recorded = record.Recorded(results, [], set(), utcnow())
    leased: list[Attempt] = []
    more = False
    engine = deliverer.settle_engine or deliverer.engine
    if wanted > 0 and len(results) >= wanted:
        async with driver_connection(engine, transaction=False) as connection:
            recorded, leased, more = await record.record_and_lease(
                connection, deliverer, results, host=host, wanted=wanted
            )
    elif wanted > 0:
        async with driver_connection(engine, transaction=True) as connection:
            if results:
                recorded = await record.record(connection, deliverer, results, lock_host=host)
            else:
                await connection.execute(lease.LOCK_ENDPOINT, host)
            leased, more = await lease.lease(connection, deliverer, host=host, wanted=wanted)
    elif results:
        async with driver_connection(engine, transaction=False) as connection:
            recorded = await record.record(connection, deliverer, results, lock_host=None)
    return record.report(recorded), leased, more


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

    def __init__(self, context: WorkerContext, host: str) -> None:
        self.context = context
        self.deliverer = context.deliverer
        self.host = host
        self.poked = False
        self.wakeup = asyncio.Event()

    def poke(self) -> None:
        self.poked = True
        self.wakeup.set()

    def _taking(self, deadline: float) -> bool:
        return time.monotonic() < deadline and self.context.accepting

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
        if time.monotonic() >= state.deadline and self.context.accepting:
            # Drain limit reached: hand the rest of the endpoint's backlog to a new job.
            await enqueue_endpoint_job(self.context.redis, self.host, reason="drain")
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
                await enqueue_deliver_job(
                    self.context.redis, attempt.id, plan.attempt_count, _defer_by=plan.delay
                )


def _outcome(task: asyncio.Task[Outcome]) -> Outcome:
    """A finished attempt's outcome; `send_attempt` never raises, but a pump must not rely on it."""
    if task.cancelled():
        return Outcome(error="The attempt was cancelled.")
    error = task.exception()
    if error is not None:
        return Outcome(error=f"Request failed: {type(error).__name__}.")
    return task.result()


async def pump_endpoint(context: WorkerContext, host: str) -> int:
    """Run this process's pump of `host`, or hand the work to the one already running."""
    pumps = context.pumps
    running = pumps.get(host)
    if running is not None:
        running.poke()
        return 0
    pump = EndpointPump(context, host)
    pumps[host] = pump
    return await pump.run(pumps)
