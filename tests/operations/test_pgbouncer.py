"""Behind PgBouncer in transaction pooling mode (APPS_API_DB_STATEMENT_CACHE_SIZE=0): no
server-side prepared statement outlives its round trip, so none leaks to another transaction
or client, and a connection that PgBouncer moves to another server keeps working."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Integer, bindparam, literal_column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from apps_api.kit.db import create_engine, create_read_sessionmaker, create_sessionmaker
from apps_api.kit.driver import CompiledStatement, driver_connection
from apps_api.models import Organization
from apps_api.settings import Settings
from tests.fixtures.pgbouncer import MISSING, pgbouncer

_PLUS_ONE = CompiledStatement(select((bindparam("n", type_=Integer) + literal_column("1")).label("n")))


def _settings(settings: Settings, cache_size: int) -> Settings:
    return settings.model_copy(update={"db_statement_cache_size": cache_size})


async def _every_kind_of_statement(engine: AsyncEngine) -> None:
    """ORM reads in a transaction and in autocommit, the driver's statements, an executemany."""
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.scalar(select(Organization.id).limit(1))
        assert (await _PLUS_ONE.fetch(session, n=1))[0]["n"] == 2
    async with create_read_sessionmaker(engine)() as session:
        await session.scalar(select(Organization.id).where(Organization.name == "x"))
        assert (await _PLUS_ONE.fetch(session, n=2))[0]["n"] == 3
    async with driver_connection(engine, transaction=True) as driver:
        await driver.execute("CREATE TEMPORARY TABLE scratch (n int) ON COMMIT DROP")
        await driver.executemany("INSERT INTO scratch (n) VALUES ($1)", [(1,), (2,)])
        assert await driver.fetchval("SELECT sum(n) FROM scratch WHERE n > $1", 0) == 3
    async with driver_connection(engine, transaction=False) as driver:
        assert await driver.fetchval("SELECT $1::int * 2", 21) == 42


async def _prepared_on_server(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM pg_prepared_statements")) or 0)


@pytest.mark.parametrize(("cache_size", "leaves_statements"), [(0, False), (100, True)])
async def test_no_prepared_statement_outlives_its_round_trip(
    settings: Settings, direct_database_url: str, cache_size: int, leaves_statements: bool
) -> None:
    # One connection, straight to PostgreSQL: what it keeps prepared is what would leak.
    engine = create_engine(
        _settings(settings, cache_size), database_url=direct_database_url, pool_size=1, max_overflow=0
    )
    try:
        await _every_kind_of_statement(engine)
        assert (await _prepared_on_server(engine) > 0) is leaves_statements
    finally:
        await engine.dispose()


async def _moved_to_another_server(engine: AsyncEngine, holder: AsyncEngine) -> None:
    """A statement, then the same statement after PgBouncer hands the client another server."""
    statement = select(literal_column("1") + bindparam("n")).where(bindparam("n") > 0)

    async def run(connection: AsyncConnection) -> Any:
        return await connection.scalar(statement, {"n": 1})

    async with engine.connect() as bare:
        connection = await bare.execution_options(isolation_level="AUTOCOMMIT")
        assert await run(connection) == 2  # on the one server PgBouncer has opened
        async with holder.connect() as held:
            await held.begin()
            await held.execute(text("SELECT 1"))  # a transaction keeps that server
            assert await run(connection) == 2  # on a server opened for it now


async def _through(
    direct_database_url: str, settings: Settings, cache_size: int, scenario: Callable[..., Awaitable[None]]
) -> None:
    with pgbouncer(direct_database_url, pool_size=2) as bounced:
        options = _settings(settings, cache_size)
        engine = create_engine(options, database_url=bounced, pool_size=5, max_overflow=0)
        holder = create_engine(options, database_url=bounced, pool_size=1, max_overflow=0)
        try:
            await scenario(engine, holder)
        finally:
            await engine.dispose()
            await holder.dispose()


needs_pgbouncer = pytest.mark.skipif(
    MISSING, reason="pgbouncer is missing: install Debian's 'pgbouncer' package (scripts/test.sh does)"
)


@needs_pgbouncer
async def test_through_pgbouncer_in_transaction_mode(settings: Settings, direct_database_url: str) -> None:
    async def scenario(engine: AsyncEngine, holder: AsyncEngine) -> None:
        await _moved_to_another_server(engine, holder)
        await _every_kind_of_statement(engine)

    await _through(direct_database_url, settings, 0, scenario)


@needs_pgbouncer
async def test_named_statements_break_behind_pgbouncer(settings: Settings, direct_database_url: str) -> None:
    """Why the setting exists: with the default caches, a moved client loses its statements."""

    async def scenario(engine: AsyncEngine, holder: AsyncEngine) -> None:
        with pytest.raises(DBAPIError, match="prepared statement"):
            await _moved_to_another_server(engine, holder)

    await _through(direct_database_url, settings, 100, scenario)


@pytest.mark.parametrize(
    ("cache_size", "generic_plans", "mode"),
    [(100, True, "force_generic_plan"), (100, False, "auto"), (0, True, "auto")],
)
async def test_the_workers_statements_are_planned_once_with_the_cache_on(
    settings: Settings, direct_database_url: str, cache_size: int, generic_plans: bool, mode: str
) -> None:
    """The worker's engine plans a prepared statement once per connection; never with the cache
    off (PgBouncer's transaction pooling), where the setting would stay on PgBouncer's server."""
    engine = create_engine(
        _settings(settings, cache_size),
        database_url=direct_database_url,
        generic_plans=generic_plans,
        pool_size=1,
        max_overflow=0,
    )
    try:
        for _ in range(2):  # a pooled connection keeps it, and so does its next checkout
            async with engine.connect() as connection:
                assert await connection.scalar(text("SHOW plan_cache_mode")) == mode
    finally:
        await engine.dispose()
