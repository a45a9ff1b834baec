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

from collections.abc import Sequence

from apps_api.delivery import lease, record
from apps_api.delivery.attempts import Attempt, Deliverer
from apps_api.delivery.retry import Plan
from apps_api.kit.driver import driver_connection
from apps_api.models.base import utcnow
from apps_api.outbound.client import Outcome


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
