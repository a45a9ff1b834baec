"""The worker's hourly maintenance (delivery/maintenance.py), called in-process: the webhook log's
daily partitions made ahead and dropped past the retention, and the purge of finished deliveries,
dispatched events and installation removals older than the retention.

Real PostgreSQL, committed rows, no worker process. The maintenance's clock is held long in the
past (1990 for the purge, 1991 for the partitions): its cutoff then reaches only the rows and
partitions the tests make, which they delete afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from apps_api.delivery import maintenance, partitions
from apps_api.delivery.states import FINISHED, DeliveryStatus
from apps_api.models import AppInstallationRemoval, Event, Organization, OutboundDelivery
from apps_api.observability.delivery_metrics import LOG_PARTITIONS_AHEAD, WORKER_REGISTRY
from apps_api.settings import Settings
from tests.delivery.test_log_partitions import committing_connection
from tests.fixtures.live_server import free_port

# The purge's clock: its cutoff (the retention before it) is in 1990, before any other test's rows.
NOW = datetime(1990, 6, 1, 12, tzinfo=UTC)
# The partitions' clock: at midnight, so that the cutoff falls on a partition boundary.
PARTITIONS_NOW = datetime(1991, 3, 10, tzinfo=UTC)
TICK = timedelta(microseconds=1)  # PostgreSQL's timestamps keep microseconds
HOUR = timedelta(hours=1)
FAILURES = "apps_api_log_partition_maintenance_failures_total"
AHEAD = "apps_api_log_partitions_ahead_days"


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The maintenance module's own records: a task of an earlier test that the garbage collector
    destroys now logs on `asyncio`, whose records caplog captures too."""
    return [record for record in caplog.records if record.name == maintenance.__name__]


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in _records(caplog)]


def _delivery(status: str, completed_at: datetime | None) -> OutboundDelivery:
    delivery_id = uuid.uuid4()
    return OutboundDelivery(
        id=delivery_id,
        kind="trigger",
        app_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        method="GET",
        endpoint_url="http://127.0.0.1:9/maintenance",
        endpoint_host="http://127.0.0.1:9",
        channel="/c",
        action="removed",
        resource_id="r",
        payload={"type": "uninstall", "claims": {}},
        message_id=f"msg_{delivery_id.hex}",
        status=status,
        created_at=NOW - timedelta(days=60),
        updated_at=completed_at or NOW - timedelta(days=60),
        completed_at=completed_at,
    )


def _event(created_at: datetime, *, dispatched: bool) -> Event:
    return Event(
        organization_id=uuid.uuid4(),
        channel="/c",
        action="added",
        resource_id="r",
        resource={},
        created_at=created_at,
        dispatched_at=created_at if dispatched else None,
    )


@dataclass
class Rows:
    """Rows committed by one test, by label; deleted after it (the removals with their organization)."""

    engine: AsyncEngine
    organization_id: uuid.UUID
    made: dict[str, Any] = field(default_factory=dict)

    def removal(self, removed_at: datetime) -> AppInstallationRemoval:
        return AppInstallationRemoval(
            id=uuid.uuid4(),
            app_id=uuid.uuid4(),
            organization_id=self.organization_id,
            app_owner_id=uuid.uuid4(),
            allowed_scopes=[],
            removed_at=removed_at,
        )

    async def add(self, **rows: Any) -> None:
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            session.add_all(rows.values())
        self.made.update(rows)

    def ids(self, model: type[Any]) -> dict[Any, str]:
        return {row.id: label for label, row in self.made.items() if isinstance(row, model)}

    async def kept(self) -> set[str]:
        """The labels of the rows still in the database."""
        kept: set[str] = set()
        async with AsyncSession(self.engine) as session:
            for model in (OutboundDelivery, Event, AppInstallationRemoval):
                ids = self.ids(model)
                found = await session.scalars(select(model.id).where(model.id.in_(list(ids))))
                kept.update(ids[row_id] for row_id in found)
        return kept


@pytest.fixture
async def rows(engine: AsyncEngine) -> AsyncIterator[Rows]:
    organization = Organization(name="Maintenance")
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add(organization)
    made = Rows(engine, organization.id)
    try:
        yield made
    finally:
        async with AsyncSession(engine) as session, session.begin():
            for model in (OutboundDelivery, Event):
                await session.execute(delete(model).where(model.id.in_(list(made.ids(model)))))
            await session.execute(delete(Organization).where(Organization.id == organization.id))


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def held_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(maintenance, "utcnow", lambda: NOW)
    return NOW


# --- the purge -------------------------------------------------------------------------------


async def _purge(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """The purge, bounded: a batch loop that never ends fails the test rather than hanging it."""
    async with asyncio.timeout(60):
        return await maintenance.purge(settings=settings, sessionmaker=sessionmaker)


async def test_a_delivery_is_purged_only_when_finished_and_completed_before_the_cutoff(
    rows: Rows, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], held_clock: datetime
) -> None:
    cutoff = held_clock - timedelta(days=settings.webhook_log_retention_days)
    for status in DeliveryStatus:
        await rows.add(
            **{
                f"{status} before the cutoff": _delivery(status, cutoff - TICK),
                f"{status} at the cutoff": _delivery(status, cutoff),
                f"{status} after the cutoff": _delivery(status, cutoff + TICK),
                f"{status} long ago": _delivery(status, cutoff - timedelta(days=365)),
                f"{status} never completed": _delivery(status, None),
            }
        )

    purged = await _purge(settings, sessionmaker)

    gone = {f"{status} {when}" for status in FINISHED for when in ("before the cutoff", "long ago")}
    # Pending and started deliveries stay whatever their age: they are still to be delivered.
    assert await rows.kept() == set(rows.made) - gone
    assert purged == len(gone)  # exactly these rows: nothing else is that old


async def test_an_event_is_purged_only_when_dispatched_and_created_before_the_cutoff(
    rows: Rows, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], held_clock: datetime
) -> None:
    cutoff = held_clock - timedelta(days=settings.webhook_log_retention_days)
    await rows.add(
        dispatched_before=_event(cutoff - TICK, dispatched=True),
        dispatched_long_ago=_event(cutoff - timedelta(days=365), dispatched=True),
        dispatched_at_the_cutoff=_event(cutoff, dispatched=True),
        dispatched_after=_event(cutoff + TICK, dispatched=True),
        undispatched_long_ago=_event(cutoff - timedelta(days=365), dispatched=False),
    )

    purged = await _purge(settings, sessionmaker)

    assert await rows.kept() == {"dispatched_at_the_cutoff", "dispatched_after", "undispatched_long_ago"}
    assert purged == 2


async def test_a_removal_is_purged_once_older_than_the_cutoff(
    rows: Rows, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], held_clock: datetime
) -> None:
    cutoff = held_clock - timedelta(days=settings.webhook_log_retention_days)
    await rows.add(
        before=rows.removal(cutoff - TICK),
        long_ago=rows.removal(cutoff - timedelta(days=365)),
        at_the_cutoff=rows.removal(cutoff),
        after=rows.removal(cutoff + TICK),
    )

    purged = await _purge(settings, sessionmaker)

    assert await rows.kept() == {"at_the_cutoff", "after"}
    assert purged == 2


# (the event's offset from the removal, whether it is dispatched, whether the removal is kept)
REMOVAL_CASES = {
    "an undispatched event written before the removal holds it": (-timedelta(days=1), False, True),
    "an undispatched event written within the hour after the removal holds it": (HOUR - TICK, False, True),
    "an undispatched event written an hour after the removal does not hold it": (HOUR, False, False),
    "an undispatched event written two hours after the removal does not hold it": (2 * HOUR, False, False),
    "a dispatched event written within the hour after the removal does not hold it": (
        HOUR / 2,
        True,
        False,
    ),
}


@pytest.mark.parametrize(("offset", "dispatched", "held"), REMOVAL_CASES.values(), ids=list(REMOVAL_CASES))
async def test_a_removal_past_the_cutoff_is_kept_while_an_undispatched_event_may_need_it(
    rows: Rows,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    held_clock: datetime,
    offset: timedelta,
    dispatched: bool,
    held: bool,
) -> None:
    """Any undispatched event written before the removal committed (plus an hour of margin for
    the writers' clocks) may still have to reach the removed installation. The removal is half an
    hour older than the cutoff: the dispatched event written within the hour after it is at the
    cutoff, so the purge keeps the event itself."""
    cutoff = held_clock - timedelta(days=settings.webhook_log_retention_days)
    removed_at = cutoff - HOUR / 2
    await rows.add(removal=rows.removal(removed_at), event=_event(removed_at + offset, dispatched=dispatched))

    purged = await _purge(settings, sessionmaker)

    assert await rows.kept() == ({"removal", "event"} if held else {"event"})
    assert purged == (0 if held else 1)


@pytest.mark.parametrize("retention_days", [1, 30])
async def test_the_retention_setting_places_the_purge_cutoff(
    rows: Rows,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    held_clock: datetime,
    retention_days: int,
) -> None:
    retention = timedelta(days=retention_days)
    await rows.add(
        delivery_before=_delivery("successful", held_clock - retention - TICK),
        delivery_after=_delivery("successful", held_clock - retention + TICK),
        event_before=_event(held_clock - retention - TICK, dispatched=True),
        event_after=_event(held_clock - retention + TICK, dispatched=True),
        removal_before=rows.removal(held_clock - retention - TICK),
        removal_after=rows.removal(held_clock - retention + TICK),
    )
    configured = settings.model_copy(update={"webhook_log_retention_days": retention_days})

    purged = await _purge(configured, sessionmaker)

    assert await rows.kept() == {"delivery_after", "event_after", "removal_after"}
    assert purged == 3


async def test_the_purge_deletes_in_batches_until_none_is_left_and_logs_what_it_deleted(
    rows: Rows,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    held_clock: datetime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Batches of 2: 4 deliveries take two full batches and an empty one, 5 events two full ones
    and a short one, 3 removals a full and a short one."""
    monkeypatch.setattr(maintenance, "PURGE_BATCH", 2)
    caplog.set_level(logging.INFO, logger=maintenance.__name__)
    cutoff = held_clock - timedelta(days=settings.webhook_log_retention_days)
    old = cutoff - timedelta(days=1)
    await rows.add(
        **{f"delivery {n}": _delivery("successful", old) for n in range(4)},
        **{f"event {n}": _event(old, dispatched=True) for n in range(5)},
        **{f"removal {n}": rows.removal(old) for n in range(3)},
    )

    purged = await _purge(settings, sessionmaker)

    assert await rows.kept() == set()
    assert purged == 12
    assert _logged(caplog) == [f"purged 12 webhook log rows older than {cutoff}"]

    caplog.clear()
    assert await _purge(settings, sessionmaker) == 0
    assert _logged(caplog) == []  # nothing deleted, nothing logged


# --- the log's partitions --------------------------------------------------------------------


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, committing; the partitions of PARTITIONS_NOW's year are dropped after."""
    connection = await committing_connection(settings)
    try:
        yield connection
    finally:
        for day, name in (await partitions.daily_partitions(connection)).items():
            if day.year == PARTITIONS_NOW.year:
                await connection.execute(f"ALTER TABLE webhook_log_entries DETACH PARTITION {name}")
                await connection.execute(f"DROP TABLE {name}")
        await connection.close()


@pytest.fixture
def partitions_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(maintenance, "utcnow", lambda: PARTITIONS_NOW)
    return PARTITIONS_NOW


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


async def test_partition_maintenance_makes_the_days_ahead_drops_those_past_the_retention_and_reports_it(
    raw: asyncpg.Connection,
    engine: AsyncEngine,
    settings: Settings,
    partitions_clock: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retention 3 days (not the default): the cutoff is March 7th, 00:00; March 6th's partition
    ends there and goes, March 7th's stays; today and the AHEAD_DAYS days after it are made."""
    caplog.set_level(logging.INFO, logger=maintenance.__name__)
    configured = settings.model_copy(update={"webhook_log_retention_days": 3})
    expired, kept = date(1991, 3, 6), date(1991, 3, 7)
    async with raw.transaction():
        for day in (expired, kept):
            await partitions.create_partition(raw, day)
    LOG_PARTITIONS_AHEAD.set(-42)
    made = _days(partitions_clock.date(), partitions.AHEAD_DAYS + 1)

    done = await maintenance.maintain_partitions(settings=configured, engine=engine)

    assert done == {"created": len(made), "dropped": 1, "days_ahead": partitions.AHEAD_DAYS}
    assert WORKER_REGISTRY.get_sample_value(AHEAD) == partitions.AHEAD_DAYS
    existing = {day for day in await partitions.daily_partitions(raw) if day.year == 1991}
    assert existing == {kept, *made}
    names = [partitions.partition_name(day) for day in made]
    assert _logged(caplog) == [
        f"webhook log partitions: created {names}, dropped {[partitions.partition_name(expired)]},"
        " 0 rows moved out of and 0 purged from DEFAULT"
    ]


MAINTENANCE_CASES = {
    "partitions created": partitions.Maintenance(created=["webhook_log_entries_p19910310"]),
    "partitions dropped": partitions.Maintenance(dropped=["webhook_log_entries_p19910301"]),
    "rows moved out of DEFAULT": partitions.Maintenance(moved_rows=3),
    "rows purged from DEFAULT": partitions.Maintenance(purged_default_rows=4),
}


@pytest.mark.parametrize("outcome", MAINTENANCE_CASES.values(), ids=list(MAINTENANCE_CASES))
async def test_partition_maintenance_logs_whenever_it_changed_anything(
    engine: AsyncEngine,
    settings: Settings,
    partitions_clock: datetime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outcome: partitions.Maintenance,
) -> None:
    """Each kind of change alone is logged (partitions.maintain's outcome given here: the real one
    moves rows only while it creates a partition)."""
    calls: list[tuple[datetime, int]] = []

    async def maintain(connection: asyncpg.Connection, *, now: datetime, retention_days: int) -> Any:
        calls.append((now, retention_days))
        return outcome

    monkeypatch.setattr(partitions, "maintain", maintain)
    caplog.set_level(logging.INFO, logger=maintenance.__name__)

    done = await maintenance.maintain_partitions(settings=settings, engine=engine)

    assert calls == [(partitions_clock, settings.webhook_log_retention_days)]
    # No partition of 1991 exists: not even "today" has one.
    assert done == {"created": len(outcome.created), "dropped": len(outcome.dropped), "days_ahead": -1}
    assert _logged(caplog) == [
        f"webhook log partitions: created {outcome.created}, dropped {outcome.dropped},"
        f" {outcome.moved_rows} rows moved out of and {outcome.purged_default_rows} purged from DEFAULT"
    ]


async def test_partition_maintenance_that_changed_nothing_logs_nothing(
    raw: asyncpg.Connection,
    engine: AsyncEngine,
    settings: Settings,
    partitions_clock: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await maintenance.maintain_partitions(settings=settings, engine=engine)  # the days ahead, made
    caplog.set_level(logging.INFO, logger=maintenance.__name__)

    done = await maintenance.maintain_partitions(settings=settings, engine=engine)

    assert done == {"created": 0, "dropped": 0, "days_ahead": partitions.AHEAD_DAYS}
    assert _logged(caplog) == []


def _failed_runs() -> float:
    return WORKER_REGISTRY.get_sample_value(FAILURES) or 0.0


async def test_partition_maintenance_that_cannot_reach_the_database_is_counted_logged_and_raised(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    failed_before = _failed_runs()
    LOG_PARTITIONS_AHEAD.set(5)
    caplog.set_level(logging.INFO, logger=maintenance.__name__)
    try:
        with pytest.raises(OSError):
            await maintenance.maintain_partitions(settings=settings, engine=unreachable)
    finally:
        await unreachable.dispose()

    assert _failed_runs() == failed_before + 1
    assert WORKER_REGISTRY.get_sample_value(AHEAD) == 5  # the gauge keeps its last reading
    (record,) = _records(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "webhook log partition maintenance failed; retrying in an hour"


async def test_partitions_made_stay_when_reading_the_days_ahead_fails_afterwards(
    raw: asyncpg.Connection,
    engine: AsyncEngine,
    settings: Settings,
    partitions_clock: datetime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """partitions.maintain commits its own transaction: a failure after it (here the count of the
    days ahead) is counted and raised, and undoes none of the partitions it made."""

    async def days_ahead(connection: asyncpg.Connection, *, now: datetime) -> int:
        raise RuntimeError("days ahead unknown")

    monkeypatch.setattr(partitions, "days_ahead", days_ahead)
    failed_before = _failed_runs()
    caplog.set_level(logging.INFO, logger=maintenance.__name__)

    with pytest.raises(RuntimeError, match="days ahead unknown"):
        await maintenance.maintain_partitions(settings=settings, engine=engine)

    assert _failed_runs() == failed_before + 1
    existing = {day for day in await partitions.daily_partitions(raw) if day.year == 1991}
    assert existing == set(_days(partitions_clock.date(), partitions.AHEAD_DAYS + 1))
    assert _logged(caplog) == ["webhook log partition maintenance failed; retrying in an hour"]
