"""The database driver (asyncpg) under the engine's pool, for the worker's hottest statements.

The delivery pipeline runs a handful of fixed statements thousands of times a second; through
SQLAlchemy each execution cost more CPU than the round trip itself (statement cache keys,
result proxies, greenlet hops). These run as prepared statements straight on the pooled
asyncpg connection, inside one asyncpg transaction. The pool, its limits and its connection
set-up (time zone, JSON codecs) stay SQLAlchemy's.

JSONB: the engine registers a codec on every connection; parameters are JSON *text*
(`json.dumps`), results come back decoded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

# Errors after which the connection cannot be trusted and must leave the pool.
_BROKEN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


@asynccontextmanager
async def driver_connection(engine: AsyncEngine, *, transaction: bool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection; with `transaction`, committed on exit and rolled back on error.

    Without, each statement commits on its own (one round trip for a one-statement write).
    """
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        try:
            if transaction:
                async with driver.transaction():
                    yield driver
            else:
                yield driver
        except _BROKEN:
            # SQLAlchemy did not see the error: tell the pool to drop this connection.
            await connection.invalidate()
            raise


async def insert_rows(
    connection: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows (dicts keyed by column; missing keys are NULL) in one pipelined round trip."""
    if not rows:
        return
    placeholders = ", ".join(f"${number}" for number in range(1, len(columns) + 1))
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608 - fixed names
    await connection.executemany(statement, [tuple(row.get(column) for column in columns) for row in rows])
