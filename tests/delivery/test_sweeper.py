"""The sweeper (delivery/sweeper.py) called directly on a held clock: what it takes from PostgreSQL,
and exactly which jobs it enqueues for it.

In process, no worker. Each test's rows live in its own transaction, rolled back afterwards (the
`connection` fixture): no worker of another test ever sees them. The sweeper's clock is held at an
instant long past (`NOW`), when no other test's delivery is due or lapsed and no other test's
event is old enough: the counts it returns are of this test's rows only. Its jobs go to a queue of
the test's own (`queue`), read back as arq stores them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from apps_api.delivery import sweeper
from apps_api.delivery.outbox import delivery_rows, endpoint_host
from apps_api.delivery.states import DeliveryStatus
from apps_api.models import Event, OutboundDelivery, Webhook
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.redis_cleanup import remove_queue_keys

# The sweeper's clock, held (microseconds too: the boundaries below are a microsecond wide).
NOW = datetime(2000, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MINUTE = timedelta(minutes=1)
# The rows the sweeper looks at per run, of each kind (due, lapsed): written out, not read from
# the module, so that a changed limit shows.
LIMIT = 1000

Sessions = Callable[[], AsyncSession]
Jobs = dict[str, tuple[str, tuple[Any, ...]]]


@pytest.fixture
def held_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(sweeper, "utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def sessions(connection: AsyncConnection, held_clock: datetime) -> Sessions:
    """Sessions in the test's transaction (the sweeper's `sessionmaker`): its commits only release
    savepoints, and everything is rolled back after the test."""

    def scoped() -> AsyncSession:
        return AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")

    return scoped


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    """An arq pool whose jobs go to a queue of this test's own (no worker takes them)."""
    name = f"{settings.queue_name}:sweeper:{uuid.uuid4().hex}"
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=name)
    try:
        yield pool
    finally:
        await pool.aclose()
        await remove_queue_keys(settings.redis_url or "", name)


async def _sweep(settings: Settings, sessions: Sessions, queue: ArqRedis) -> dict[str, int]:
    return await sweeper.sweep(settings=settings, sessionmaker=sessions, redis=queue)


async def _jobs(queue: ArqRedis) -> Jobs:
    """The queued jobs: id -> (function, arguments)."""
    jobs = await queue.queued_jobs()
    assert all(not job.kwargs for job in jobs)
    return {str(job.job_id): (job.function, job.args) for job in jobs}


def _deliver(*rows: dict[str, Any]) -> Jobs:
    """The deliver job of each row: its id names the delivery and the attempt it was due for."""
    return {
        f"deliver:{row['id']}:{row['attempt_count']}": ("deliver_outbound", (str(row["id"]),)) for row in rows
    }


def _host() -> str:
    """An endpoint (scheme://host:port) of this test's own."""
    return f"http://{uuid.uuid4().hex[:16]}.sweeper.invalid:8080"


def _row(
    host: str,
    *,
    status: str = DeliveryStatus.PENDING,
    attempt_count: int = 1,
    next_attempt_at: datetime = NOW - MINUTE,
    locked_until: datetime | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A delivery row (a trigger's unless `fields` say otherwise) to `host`."""
    org = uuid.uuid4()
    values: dict[str, Any] = {
        "kind": "trigger",
        "app_id": uuid.uuid4(),
        "organization_id": org,
        "channel": f"/api/v5/orgs/{org}/owned_apps/x/installations",
        "action": "removed",
        "resource_id": "installation-1",
        "payload": {"type": "uninstall", "claims": {"organization_id": str(org)}},
        **fields,
    }
    delivery, _ = delivery_rows(
        endpoint_url=f"{host}/hook",
        status=status,
        attempt_count=attempt_count,
        next_attempt_at=next_attempt_at,
        locked_until=locked_until,
        locked_by=None if locked_until is None else "a worker",
        **values,
    )
    delivery["current_log_entry_id"] = None
    return delivery


async def _insert(sessions: Sessions, *rows: dict[str, Any]) -> None:
    async with sessions() as session:
        await session.execute(insert(OutboundDelivery), list(rows))
        await session.commit()


async def _deliveries(sessions: Sessions, *rows: dict[str, Any]) -> dict[uuid.UUID, OutboundDelivery]:
    async with sessions() as session:
        ids = [row["id"] for row in rows]
        found = (await session.scalars(select(OutboundDelivery).where(OutboundDelivery.id.in_(ids)))).all()
        return {delivery.id: delivery for delivery in found}


async def test_a_delivery_due_exactly_now_is_swept_and_one_due_a_microsecond_later_is_not(
    settings: Settings, sessions: Sessions, queue: ArqRedis
) -> None:
    """Due is `next_attempt_at <= now`: a delivery due a microsecond ago or exactly now gets a
    deliver job (named after its delivery and attempt count), one due a microsecond from now none."""
    earlier = _row(_host(), attempt_count=2, next_attempt_at=NOW - MICROSECOND)
    exactly = _row(_host(), attempt_count=5, next_attempt_at=NOW)
    later = _row(_host(), attempt_count=3, next_attempt_at=NOW + MICROSECOND)
    await _insert(sessions, earlier, exactly, later)
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 2, "stale": 0}
    assert await _jobs(queue) == _deliver(earlier, exactly)


async def test_a_lease_lapsed_a_microsecond_ago_is_stale_and_one_lapsing_exactly_now_is_not(
    settings: Settings, sessions: Sessions, queue: ArqRedis
) -> None:
    """Stale is a started delivery with `locked_until < now`: a lease that ends exactly now is
    still held, one that ended a microsecond ago has lapsed (its worker died) and gets a job."""
    started: dict[str, Any] = {"status": DeliveryStatus.STARTED, "next_attempt_at": NOW - MINUTE}
    lapsed = _row(_host(), attempt_count=4, locked_until=NOW - MICROSECOND, **started)
    ends_now = _row(_host(), attempt_count=2, locked_until=NOW, **started)
    held = _row(_host(), attempt_count=3, locked_until=NOW + MINUTE, **started)
    await _insert(sessions, lapsed, ends_now, held)
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 0, "stale": 1}
    assert await _jobs(queue) == _deliver(lapsed)


async def test_each_status_is_taken_by_its_own_query_only(
    settings: Settings, sessions: Sessions, queue: ArqRedis
) -> None:
    """A delivery of each status, all due a minute ago with a lease lapsed a minute ago: only the
    pending one is due and only the started one is stale. The statuses sort `failed` < `pending`
    < `started` < `successful`: any comparison but `==` takes another status or loses its own. A pending
    delivery waiting for its retry with its last lease lapsed is neither."""
    rows = {
        status: _row(_host(), status=status, attempt_count=n, locked_until=NOW - MINUTE)
        for n, status in enumerate(DeliveryStatus, start=1)
    }
    waiting = _row(_host(), attempt_count=6, next_attempt_at=NOW + MINUTE, locked_until=NOW - MINUTE)
    await _insert(sessions, *rows.values(), waiting)
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 1, "stale": 1}
    assert await _jobs(queue) == _deliver(rows[DeliveryStatus.STARTED], rows[DeliveryStatus.PENDING])


async def test_one_job_per_endpoint_for_its_lapsed_lease_first_then_its_earliest_due_attempt(
    settings: Settings, sessions: Sessions, queue: ArqRedis
) -> None:
    """One deliver job per endpoint (its pump takes every due attempt of it): an endpoint's lapsed
    lease comes before its due attempts, its earliest due attempt before later ones; an endpoint
    whose rows come after another endpoint's second row still gets its job, and two endpoints
    whose attempts have the same count get one each."""
    a, b, c = _host(), _host(), _host()
    started: dict[str, Any] = {"status": DeliveryStatus.STARTED, "locked_until": NOW - MINUTE}
    lapsed_a = _row(a, attempt_count=4, next_attempt_at=NOW - 10 * MINUTE, **started)
    due_a = _row(a, attempt_count=1, next_attempt_at=NOW - 2 * MINUTE)
    first_b = _row(b, attempt_count=2, next_attempt_at=NOW - 3 * MINUTE)
    second_b = _row(b, attempt_count=2, next_attempt_at=NOW - MINUTE)
    due_c = _row(c, attempt_count=2, next_attempt_at=NOW - MICROSECOND)
    await _insert(sessions, due_c, second_b, due_a, first_b, lapsed_a)
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 4, "stale": 1}
    assert await _jobs(queue) == _deliver(lapsed_a, first_b, due_c)


async def test_an_undispatched_event_older_than_the_grace_gets_a_dispatch_job_and_younger_ones_none(
    settings: Settings, sessions: Sessions, queue: ArqRedis, tenant: Tenant
) -> None:
    """Undispatched events younger than the grace (2 s), or exactly that old, are their commit's
    notification's to dispatch: no job. One a microsecond older was missed: one dispatch job,
    under an id naming the run's queue and the second (the same second's sweeps enqueue it once)."""

    def event(created_at: datetime, dispatched_at: datetime | None = None) -> Event:
        return Event(
            organization_id=tenant.org_id,
            channel=f"/api/v5/orgs/{tenant.org_id}/chats",
            action="added",
            resource_id="swept",
            resource={},
            created_at=created_at,
            dispatched_at=dispatched_at,
        )

    grace = timedelta(seconds=2)
    async with sessions() as session:
        session.add_all([event(NOW), event(NOW - grace), event(NOW - 10 * grace, dispatched_at=NOW - grace)])
        await session.commit()
        assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 0, "stale": 0}
        assert await _jobs(queue) == {}
        session.add(event(NOW - grace - MICROSECOND))
        await session.commit()
        before = int(time.time())
        assert await _sweep(settings, sessions, queue) == {"undispatched": 1, "due": 0, "stale": 0}
        after = int(time.time())
    jobs = await _jobs(queue)
    assert len(jobs) == 1
    (job_id,) = jobs
    assert job_id in {f"dispatch-sweep:{settings.queue_name}:{second}" for second in range(before, after + 1)}
    assert jobs[job_id] == ("dispatch_events", ())


async def test_a_sweep_looks_at_the_first_1000_due_and_the_first_1000_lapsed_deliveries(
    settings: Settings, sessions: Sessions, queue: ArqRedis
) -> None:
    """1001 due deliveries and 1001 lapsed leases: a sweep counts 1000 of each, the due ones
    earliest first (the last one's endpoint gets no job)."""
    due_host, stale_host, last_host = _host(), _host(), _host()
    last = _row(last_host, next_attempt_at=NOW)
    due = [_row(due_host, next_attempt_at=NOW - (n + 1) * MICROSECOND) for n in range(LIMIT)]
    stale = [
        _row(stale_host, status=DeliveryStatus.STARTED, locked_until=NOW - (n + 1) * MICROSECOND)
        for n in range(LIMIT + 1)
    ]
    await _insert(sessions, last, *due, *stale)  # the last due first: the order is the query's
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": LIMIT, "stale": LIMIT}
    jobs = await _jobs(queue)
    lapsed = [row for row in stale if set(_deliver(row)) <= set(jobs)]
    assert len(lapsed) == 1
    assert jobs == _deliver(due[-1], *lapsed)


async def _webhook(sessions: Sessions, tenant: Tenant, url: str, **health: Any) -> Webhook:
    """A webhook (`health`: its failure streak) of a new app of the tenant's."""
    async with sessions() as session:
        app = await make_app(session, tenant.organization)
        webhook = Webhook(app_id=app.id, organization_id=tenant.org_id, endpoint_url=url, **health)
        session.add(webhook)
        await session.commit()
    return webhook


def _row_of(webhook: Webhook, url: str | None = None, **fields: Any) -> dict[str, Any]:
    """A row of a delivery of the webhook's (to `url`, by default its URL) due a minute ago."""
    values: dict[str, Any] = {
        "kind": "webhook",
        "app_id": webhook.app_id,
        "organization_id": webhook.organization_id,
        "webhook_id": webhook.id,
        "channel": f"/api/v5/orgs/{webhook.organization_id}/chats",
        "action": "added",
        "payload": {"n": 1},
        **fields,
    }
    return _row(endpoint_host(url or webhook.endpoint_url), **values)


async def test_a_sweep_disables_webhooks_that_only_fail_and_their_due_deliveries_get_no_job(
    settings: Settings,
    sessions: Sessions,
    queue: ArqRedis,
    tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before it looks for due deliveries, the sweep disables the webhooks failing for longer than
    the setting with enough failures (and warns once, with their number), and ends the waiting
    deliveries of disabled and deleted webhooks: only the healthy webhook's delivery gets a job.
    A second sweep disables nothing and warns of nothing."""
    caplog.set_level(logging.WARNING, logger=sweeper.__name__)
    failing = {
        "failing_since": NOW - timedelta(days=settings.webhook_disable_after_days, hours=1),
        "failures_in_streak": settings.webhook_disable_min_failures,
    }
    disabled = await _webhook(sessions, tenant, f"{_host()}/hook", **failing)
    kept = await _webhook(sessions, tenant, f"{_host()}/hook")
    of_disabled, healthy = _row_of(disabled), _row_of(kept)
    of_deleted = _row_of(kept, f"{_host()}/hook", webhook_id=uuid.uuid4())  # no such webhook
    await _insert(sessions, of_disabled, healthy, of_deleted)
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 1, "stale": 0}
    assert await _jobs(queue) == _deliver(healthy)
    warnings = [record for record in caplog.records if record.name == sweeper.__name__]
    assert [(record.levelno, record.getMessage()) for record in warnings] == [
        (logging.WARNING, "disabled 1 webhooks whose every attempt failed")
    ]
    rows = await _deliveries(sessions, of_disabled, healthy, of_deleted)
    assert [rows[row["id"]].status for row in (of_disabled, healthy, of_deleted)] == [
        DeliveryStatus.FAILED,
        DeliveryStatus.PENDING,
        DeliveryStatus.FAILED,
    ]
    async with sessions() as session:
        assert (await session.get_one(Webhook, disabled.id)).is_disabled
    caplog.clear()
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 1, "stale": 0}
    assert [record for record in caplog.records if record.name == sweeper.__name__] == []


async def test_a_sweep_moves_due_deliveries_to_their_webhooks_new_url_and_starts_the_new_endpoint(
    settings: Settings, sessions: Sessions, queue: ArqRedis, tenant: Tenant
) -> None:
    """A due delivery still on its webhook's old URL moves to the new one, and the new endpoint
    gets a job of its own (a `moved` one, by endpoint) besides the delivery's deliver job; the
    old endpoint gets none."""
    old, new = _host(), _host()
    webhook = await _webhook(sessions, tenant, f"{new}/hook")
    row = _row_of(webhook, f"{old}/hook", attempt_count=3)
    await _insert(sessions, row)
    before = time.time()
    assert await _sweep(settings, sessions, queue) == {"undispatched": 0, "due": 1, "stale": 0}
    after = time.time()
    moved = await _deliveries(sessions, row)
    assert (moved[row["id"]].endpoint_url, moved[row["id"]].endpoint_host) == (f"{new}/hook", new)
    jobs = await _jobs(queue)
    moved_jobs = [job_id for job_id in jobs if job_id.startswith("moved:")]
    assert len(moved_jobs) == 1
    (moved_job,) = moved_jobs
    assert moved_job.startswith(f"moved:{new}:") and before <= float(moved_job.rsplit(":", 1)[1]) <= after
    assert jobs == {moved_job: ("deliver_outbound", (None, new)), **_deliver(row)}
