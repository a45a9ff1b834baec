"""GET requests read on a plain connection that refuses to write (kit/driver.ReadConnection)."""

from __future__ import annotations

import uuid
from typing import cast

import pytest
from sqlalchemy import Table, bindparam, delete, insert, literal_column, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from apps_api.kit.db import engine_read_connections, statement_cache_options
from apps_api.kit.driver import CompiledStatement
from apps_api.models import Organization
from apps_api.settings import Settings

_ORGANIZATIONS = cast(Table, Organization.__table__)
_NAMES = CompiledStatement(select(_ORGANIZATIONS.c.name).where(_ORGANIZATIONS.c.id == bindparam("id")))
_WRITES = {
    "insert": insert(_ORGANIZATIONS).values(name=bindparam("name")),
    "update": update(_ORGANIZATIONS)
    .values(name=bindparam("name"))
    .where(_ORGANIZATIONS.c.id == bindparam("id")),
    "delete": delete(_ORGANIZATIONS).where(_ORGANIZATIONS.c.id == bindparam("id")),
    "insert in a CTE": select(
        insert(_ORGANIZATIONS).values(name=bindparam("name")).returning(_ORGANIZATIONS.c.id).cte("made").c.id
    ),
    "locking read": select(_ORGANIZATIONS.c.id)
    .where(_ORGANIZATIONS.c.id == bindparam("id"))
    .with_for_update(),
}


@pytest.mark.parametrize("kind", list(_WRITES))
async def test_a_read_connection_refuses_every_statement_that_writes(engine: AsyncEngine, kind: str) -> None:
    statement = CompiledStatement(_WRITES[kind])
    assert statement.writes
    name = f"read-connection-{uuid.uuid4().hex}"
    async with engine_read_connections(engine)() as db:
        with pytest.raises(RuntimeError, match="must not write"):
            await statement.fetch(db, name=name, id=uuid.uuid4())
    async with engine.connect() as connection:
        stored = (
            await connection.execute(select(_ORGANIZATIONS.c.id).where(_ORGANIZATIONS.c.name == name))
        ).all()
    assert stored == []


async def test_reads_run_outside_any_transaction_and_the_connection_goes_back_clean(
    engine: AsyncEngine, settings: Settings
) -> None:
    # A pool of one: the next checkout is certainly the connection the read used.
    options = statement_cache_options(settings)
    url = settings.async_database_url
    single = create_async_engine(url, pool_size=1, max_overflow=0, connect_args=options)
    async with engine.begin() as connection:
        organization_id = (
            await connection.execute(
                insert(_ORGANIZATIONS)
                .values(name=f"read-connection-{uuid.uuid4().hex}")
                .returning(_ORGANIZATIONS.c.id)
            )
        ).scalar_one()
    try:
        async with engine_read_connections(single)() as db:
            assert not _NAMES.writes
            rows = await _NAMES.fetch(db, id=organization_id)
            assert len(rows) == 1
            assert rows[0]["name"].startswith("read-connection-")
            assert not db.driver.is_in_transaction()  # no BEGIN was sent, none will be
            used = db.driver
        # Back in the pool as it came: the next checkout gets it, idle, with a transaction of its own.
        async with single.connect() as connection:
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is used
            assert not used.is_in_transaction()
            await connection.execute(select(literal_column("1")))
            assert used.is_in_transaction()  # SQLAlchemy's own BEGIN, as ever
    finally:
        await single.dispose()
        async with engine.begin() as connection:
            await connection.execute(delete(_ORGANIZATIONS).where(_ORGANIZATIONS.c.id == organization_id))


async def test_a_broken_read_connection_leaves_the_pool(engine: AsyncEngine) -> None:
    async with engine_read_connections(engine)() as db:
        broken = db.driver
        backend = (await broken.fetchrow("SELECT pg_backend_pid() AS pid"))["pid"]
        async with engine.connect() as other:
            await other.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        with pytest.raises(DBAPIError) as raised:
            await _NAMES.fetch(db, id=uuid.uuid4())
        assert raised.value.connection_invalidated
    async with engine_read_connections(engine)() as db:
        assert db.driver is not broken
        assert await _NAMES.fetch(db, id=uuid.uuid4()) == []
