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

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

# Errors after which the connection cannot be trusted and must leave the pool: a lost socket, a
# protocol left mid-operation (asyncpg's InternalClientError, seen when PostgreSQL shut down
# under a statement), and PostgreSQL's own shutdown notices (class 57P).
_BROKEN = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


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


def with_column_defaults(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every column of a new row: `values`, else the column's Python-side default (as an INSERT applies it).

    For an INSERT that names every column (a statement sent to the driver gets no defaults
    applied); a column without a default is NULL.
    """
    row: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.key in values:
            row[column.key] = values[column.key]
        elif default is None:
            # A server-side default would be overridden with NULL: refuse rather than guess.
            if column.server_default is not None:
                raise ValueError(f"{table.name}.{column.key} has a server default")
            row[column.key] = None
        elif default.is_scalar:
            row[column.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:
            row[column.key] = default.arg(None)  # type: ignore[attr-defined]
        else:
            raise ValueError(f"{table.name}.{column.key} has a SQL default")
    return row


class ReadConnection:
    """The database of a GET request: a pooled asyncpg connection that only reads.

    No ORM session around it and no transaction (each statement commits on its own, and READ
    COMMITTED takes a snapshot per statement anyway, so a read sees what it saw inside BEGIN ...
    COMMIT). Statements reach it only through `CompiledStatement`, which refuses any that writes:
    a GET cannot change anything, whatever its code does. `kit.db.engine_read_connections` opens
    one per request; tests hand out their own transaction's connection.
    """

    __slots__ = ("_invalidate", "driver")

    def __init__(
        self, driver: asyncpg.Connection, invalidate: Callable[[BaseException], Awaitable[None]]
    ) -> None:
        self.driver = driver
        self._invalidate = invalidate

    async def invalidate(self, exc: BaseException) -> None:
        """Tell the pool this connection is broken: it is closed, not reused."""
        await self._invalidate(exc)


class WriteConnection:
    """The database of a write that runs compiled statements only: a pooled asyncpg connection
    inside one transaction, with no ORM session around it.

    For the hottest writes (creating an app): the session's checkout, BEGIN and COMMIT through
    the ORM cost about a third of such a request's CPU (bench/ANALYSIS.md, tenth round).
    `kit.db.engine_write_connections` opens one per request and commits it (then runs its
    after-commit callbacks, kept in `info` as a session keeps them) or rolls it back; tests hand
    out a savepoint of their own transaction.
    """

    __slots__ = ("_invalidate", "driver", "info")

    def __init__(
        self, driver: asyncpg.Connection, invalidate: Callable[[BaseException], Awaitable[None]]
    ) -> None:
        self.driver = driver
        self._invalidate = invalidate
        self.info: dict[str, Any] = {}

    async def invalidate(self, exc: BaseException) -> None:
        """Tell the pool this connection is broken: it is closed, not reused."""
        await self._invalidate(exc)


async def run_guarded(
    step: Callable[[], Awaitable[Any]], label: str, invalidate: Callable[[BaseException], Awaitable[None]]
) -> Any:
    """Run a driver call, its errors raised as SQLAlchemy's (as `CompiledStatement` raises them)."""
    try:
        return await step()
    except _BROKEN as exc:
        await invalidate(exc)
        raise DBAPIError(label, None, exc, hide_parameters=True, connection_invalidated=True) from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(label, None, exc, hide_parameters=True) from exc
    except asyncpg.PostgresError as exc:
        raise DBAPIError(label, None, exc, hide_parameters=True) from exc


class CompiledStatement:
    """A Core statement (reads and writes), compiled once, run straight on asyncpg.

    On a session, in the session's transaction (or autocommit, for a read session); on a
    `ReadConnection`, on its own (a statement that writes is refused there). Through the session
    each execution cost more CPU (compile cache, ORM execute state, cursor and result wrappers,
    greenlet hops) than its round trip; figures in bench/ANALYSIS.md. Values are always bound
    parameters, named by the statement's `bindparam()`s; JSONB values are JSON text. Rows come
    back as asyncpg records (`row["label"]`). Errors come out as SQLAlchemy's (IntegrityError;
    DBAPIError with `connection_invalidated` for a lost connection, which leaves the pool), so
    callers and the error handlers see what the session would have raised.
    """

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = compiled.string
        self._names = tuple(compiled.positiontup or ())
        # Decided once from the statement's structure (a SELECT with a data-modifying CTE counts).
        self.writes = _WRITING.search(self.sql) is not None

    async def fetch(self, db: Database, **values: Any) -> Sequence[Any]:
        """Run the statement; returns its rows (none without RETURNING)."""
        if isinstance(db, ReadConnection):
            if self.writes:
                raise RuntimeError("A GET request must not write (it reads on a connection of its own).")
            return await self._run(db.driver, tuple(values[name] for name in self._names), db.invalidate)
        if isinstance(db, WriteConnection):
            return await self._run(db.driver, tuple(values[name] for name in self._names), db.invalidate)
        args = tuple(values[name] for name in self._names)
        known = _known_driver(db)
        if known is None:
            connection = await db.connection()
            raw = await connection.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            autocommit = connection.sync_engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
            if not autocommit and not driver.is_in_transaction():
                await _begin(connection, raw.dbapi_connection)
            _remember_driver(db, connection, driver)
        else:
            connection, driver = known

        async def invalidate(exc: BaseException) -> None:
            db.info.pop(_DRIVER_KEY, None)
            await connection.invalidate(exc)

        return await self._run(driver, args, invalidate)

    async def _run(
        self,
        driver: asyncpg.Connection,
        args: tuple[Any, ...],
        invalidate: Callable[[BaseException], Awaitable[None]],
    ) -> Sequence[Any]:
        # run_guarded's mapping, inline: this runs for every statement of every request.
        try:
            records: list[asyncpg.Record] = await driver.fetch(self.sql, *args)
        except _BROKEN as exc:
            await invalidate(exc)
            raise DBAPIError(self.sql, None, exc, hide_parameters=True, connection_invalidated=True) from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(self.sql, None, exc, hide_parameters=True) from exc
        except asyncpg.PostgresError as exc:
            raise DBAPIError(self.sql, None, exc, hide_parameters=True) from exc
        return records


# Where a compiled statement runs: a request's session, a GET's connection, a write's connection.
Database = AsyncSession | ReadConnection | WriteConnection


async def _begin(connection: AsyncConnection, adapted: Any) -> None:
    """The session's BEGIN, sent the way SQLAlchemy's asyncpg adapter sends it before the first
    statement it runs (a statement sent straight to asyncpg now would run outside the transaction).

    Through the adapter itself, so SQLAlchemy commits and rolls back this very transaction; rather
    than running the first statement through SQLAlchemy's execution path, which cost more CPU than
    the statement's round trip (bench/ANALYSIS.md).
    """
    try:
        async with adapted._execute_mutex:  # the adapter's own BEGIN, under its own lock
            if adapted._transaction is None:
                await adapted._start_transaction()
    except Exception as exc:
        await connection.invalidate(exc)
        raise DBAPIError("BEGIN", None, exc, hide_parameters=True, connection_invalidated=True) from exc


# A statement that writes or locks anywhere in its text, data-modifying CTEs included (values are
# bound parameters, so no literal can look like one). A function that writes is not caught: the
# statements are ours, compiled from Core, and none calls one.
_WRITING = re.compile(
    r"\b(INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|FOR\s+(NO\s+KEY\s+)?UPDATE|FOR\s+(KEY\s+)?SHARE)\b"
)


# A request runs two to four statements on one session: the first finds the session's driver
# connection (a greenlet hop into the ORM session and the pool), the others reuse it for as long
# as the session's transaction (hence its connection) is the same one.
_DRIVER_KEY = "apps_api.driver_connection"


def _known_driver(session: AsyncSession) -> tuple[AsyncConnection, asyncpg.Connection] | None:
    known = session.info.get(_DRIVER_KEY)
    if known is None or known[0] is not session.sync_session.get_transaction():
        return None
    return known[1], known[2]


def _remember_driver(session: AsyncSession, connection: AsyncConnection, driver: asyncpg.Connection) -> None:
    session.info[_DRIVER_KEY] = (session.sync_session.get_transaction(), connection, driver)
