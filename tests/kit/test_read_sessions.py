"""GET requests run in an autocommit session that refuses to write (kit/db.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.kit.db import create_read_sessionmaker
from apps_api.models import Organization


async def test_read_sessions_autocommit_and_refuse_writes(engine: AsyncEngine) -> None:
    sessionmaker = create_read_sessionmaker(engine)
    async with sessionmaker() as session:
        connection = await session.connection()
        assert connection.sync_connection is not None
        assert connection.sync_connection.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
        await session.execute(select(Organization.id).limit(1))
        raw = await connection.get_raw_connection()
        assert raw.dbapi_connection is not None
        assert raw.dbapi_connection.autocommit  # no BEGIN was sent, none will be
        with pytest.raises(RuntimeError, match="must not write"):
            await session.execute(insert(Organization).values(name="Nope"))
        with pytest.raises(RuntimeError, match="must not write"):
            await session.execute(update(Organization).values(name="Nope"))
        session.add(Organization(name="Nope"))
        with pytest.raises(RuntimeError, match="must not write"):
            await session.flush()
    # Connections go back to the pool with the engine's default (transactional) behaviour.
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert raw.dbapi_connection is not None and not raw.dbapi_connection.autocommit
