"""Engine, sessions and the request-scoped unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from apps_api.kit.driver import ReadConnection, WriteConnection, run_guarded
from apps_api.settings import Settings, to_asyncpg_url

AfterCommit = Callable[[], Awaitable[Any]]
T = TypeVar("T")
_AFTER_COMMIT_KEY = "apps_api.after_commit"


_READ_METHODS = frozenset({"GET", "HEAD"})


def driver_options(settings: Settings) -> dict[str, Any]:
    """asyncpg connect arguments (SQLAlchemy's `connect_args`) for the configured statement cache.

    With `APPS_API_DB_STATEMENT_CACHE_SIZE=0` (PgBouncer, transaction pooling) every statement
    is unnamed: asyncpg sends Parse, Describe and Flush, then Parse again with Bind, Execute and
    Sync, so PgBouncer (which may hand the client another server after each Sync) never sees a
    statement outlive its round trip, and named statements never pile up on its servers.
    """
    return {
        "timeout": settings.db_connect_timeout,
        "server_settings": {"application_name": "apps-api", "timezone": "UTC"},
        **statement_cache_options(settings),
    }


def statement_cache_options(settings: Settings) -> dict[str, Any]:
    """The prepared statement caches (asyncpg's and SQLAlchemy's) of `driver_options`."""
    if settings.db_statement_cache_size <= 0:
        return {
            "statement_cache_size": 0,  # asyncpg's own cache (the driver module's statements)
            "prepared_statement_cache_size": 0,  # SQLAlchemy's cache of prepared statements
            "prepared_statement_name_func": _unnamed_statement,  # "" is the unnamed statement
        }
    return {
        "statement_cache_size": settings.db_statement_cache_size,
        "prepared_statement_cache_size": settings.db_statement_cache_size,
    }


def _unnamed_statement() -> str:
    return ""


def create_engine(
    settings: Settings, *, database_url: str | None = None, generic_plans: bool = False, **pool: Any
) -> AsyncEngine:
    """The engine of a process (`database_url` and `pool` arguments override the settings).

    `generic_plans`: its prepared statements are planned once per connection, not at every run.
    For the worker, whose few fixed statements run thousands of times a second: PostgreSQL's
    default replans a statement whose custom plans look cheaper, and planning the engine's
    statements (their UPDATEs reach every partition of the log) took longer than running them
    (bench/ANALYSIS.md). Only with the statement cache on: unnamed statements (PgBouncer's
    transaction pooling) are planned at every run anyway, and a session setting would outlive
    the transaction on PgBouncer's server.
    """
    url = to_asyncpg_url(database_url) if database_url else settings.async_database_url
    pool_options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        # Fail fast when PostgreSQL is down or the pool is exhausted: a 503, not a hung request.
        "pool_timeout": settings.db_pool_timeout,
    }
    engine = create_async_engine(
        url,
        **(pool or pool_options),
        # No pool_pre_ping: with asyncpg it is three round trips (BEGIN; ";"; ROLLBACK) before
        # every request. `_discard_closed` below catches what it caught for free.
        # Statement parameters hold app secrets and token digests: never in logs or errors.
        hide_parameters=True,
        connect_args=driver_options(settings),
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    if generic_plans and settings.db_statement_cache_size > 0:
        event.listen(engine.sync_engine, "connect", _plan_once)
    return engine


def _plan_once(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.run_async(lambda driver: driver.execute("SET plan_cache_mode = force_generic_plan"))


def _discard_closed(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    """Replace a pooled connection that PostgreSQL closed (restart, shutdown, terminated backend).

    asyncpg notices the closed socket on its own, so this costs no round trip; the pool retries
    the checkout with a new connection. A connection that dies unnoticed fails its statement,
    which SQLAlchemy reports as a disconnect (a 503) and which invalidates the whole pool.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("PostgreSQL closed the connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: responses are serialized after the unit of work ends.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class ReadOnlySession(Session):
    """The session of a GET: autocommit, so no BEGIN/COMMIT round trips; writes are refused."""


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_write_statements(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise RuntimeError("A GET request must not write (its session autocommits every statement).")


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, flush_context: Any, instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("A GET request must not write (its session autocommits every statement).")


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for GET requests.

    Each statement is its own transaction (READ COMMITTED takes a snapshot per statement
    anyway, so a read-only request sees exactly what it saw inside BEGIN ... COMMIT), which
    saves two of a read's three or four round trips.
    """
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
        sync_session_class=ReadOnlySession,
    )


def after_commit(session: AsyncSession | WriteConnection, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit callbacks registered on this session."""
    await session.commit()
    await _run_after_commit(session)


async def _run_after_commit(session: AsyncSession | WriteConnection) -> None:
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        await callback()


def discard_after_commit(session: AsyncSession | WriteConnection) -> None:
    session.info.pop(_AFTER_COMMIT_KEY, None)


@asynccontextmanager
async def unit_of_work(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit once when the block ends, roll back (and drop after-commit work) on any error."""
    try:
        yield session
    except BaseException:
        discard_after_commit(session)
        await session.rollback()
        raise
    await commit(session)


RequestSessions = Callable[[str], AbstractAsyncContextManager[AsyncSession]]


def engine_request_sessions(engine: AsyncEngine) -> RequestSessions:
    """The production session of a request by its method: GET/HEAD read-only and autocommit,
    anything else in one unit of work committed when the handler returns."""
    sessionmaker = create_sessionmaker(engine)
    read_sessionmaker = create_read_sessionmaker(engine)

    @asynccontextmanager
    async def request_session(method: str) -> AsyncIterator[AsyncSession]:
        if method in _READ_METHODS:
            async with read_sessionmaker() as session:
                yield session
                # Autocommit: every statement is already committed and there is nothing to roll
                # back, so closing the session is all that is left (Session.commit() is not free).
                await _run_after_commit(session)
            return
        async with sessionmaker() as session, unit_of_work(session):
            yield session

    return request_session


ReadConnections = Callable[[], AbstractAsyncContextManager[ReadConnection]]


def engine_read_connections(engine: AsyncEngine) -> ReadConnections:
    """The production connection of a GET request, straight from the engine's pool.

    One greenlet hop to check it out and one to return it: no `AsyncConnection` or session
    around it (a checkout through the session cost twice one through `engine.connect()`,
    bench/ANALYSIS.md). Nothing runs on it through SQLAlchemy, so it never begins a transaction
    and goes back to the pool as it came.
    """
    sync_engine = engine.sync_engine

    @asynccontextmanager
    async def read_connection() -> AsyncIterator[ReadConnection]:
        connection = await greenlet_spawn(sync_engine.connect)
        try:
            driver = connection.connection.driver_connection

            async def invalidate(exc: BaseException) -> None:
                await greenlet_spawn(connection.invalidate, exc)

            yield ReadConnection(driver, invalidate)
        finally:
            await greenlet_spawn(connection.close)

    return read_connection


WriteConnections = Callable[[], AbstractAsyncContextManager[WriteConnection]]


def engine_write_connections(engine: AsyncEngine) -> WriteConnections:
    """The production connection of a write that runs compiled statements only (`WriteConnection`):
    from the engine's pool like a GET's, in one asyncpg transaction, committed when the block ends
    (then its after-commit callbacks run), rolled back on any error (and the callbacks dropped).

    BEGIN, COMMIT and ROLLBACK go straight to asyncpg, their errors raised as SQLAlchemy's (a lost
    connection leaves the pool). SQLAlchemy never sees the transaction, so the connection goes
    back to the pool with nothing of its own to reset.
    """
    sync_engine = engine.sync_engine

    @asynccontextmanager
    async def write_connection() -> AsyncIterator[WriteConnection]:
        connection = await greenlet_spawn(sync_engine.connect)
        try:

            async def invalidate(exc: BaseException) -> None:
                await greenlet_spawn(connection.invalidate, exc)

            async with write_transaction(connection.connection.driver_connection, invalidate) as db:
                yield db
        finally:
            await greenlet_spawn(connection.close)

    return write_connection


@asynccontextmanager
async def write_transaction(
    driver: asyncpg.Connection, invalidate: Callable[[BaseException], Awaitable[None]]
) -> AsyncIterator[WriteConnection]:
    """A `WriteConnection`'s unit of work on `driver`: BEGIN (a SAVEPOINT inside a transaction
    already open, as in tests), then COMMIT and the after-commit callbacks, or on any error
    ROLLBACK, the callbacks dropped and the error raised."""
    db = WriteConnection(driver, invalidate)
    transaction = driver.transaction()
    await run_guarded(transaction.start, "BEGIN", invalidate)
    try:
        yield db
    except BaseException:
        discard_after_commit(db)
        try:
            await transaction.rollback()
        except Exception as exc:  # a broken connection: the pool drops it; the error stands
            await invalidate(exc)
        raise
    await run_guarded(transaction.commit, "COMMIT", invalidate)
    await _run_after_commit(db)


# FastAPI's stack of the request's function-scoped dependencies (fastapi.routing.request_response):
# closed once the endpoint returns, before the response is sent. tests/auth/test_readers.py and
# tests/kit/test_request_sessions.py pin what it is used for.
FUNCTION_STACK = "fastapi_function_astack"


def enter_until_response(request: Request, context: AbstractAsyncContextManager[T]) -> Awaitable[T]:
    """Enter `context` for the request; it exits (with the endpoint's exception, if any) once the
    endpoint returns, before the response is sent: `Depends(..., scope="function")` for a
    generator, without FastAPI's wrapping of one.

    FastAPI wraps a generator dependency at every request in a new context manager, a cancel
    scope and a second generator that shields its exit: for the session of a write, about a
    fifth of the request's CPU (bench/ANALYSIS.md, tenth round). The shield guards against the
    cancellation of an enclosing anyio scope, which no route here has (no task group, no
    streaming response); a forced shutdown that cancels the request mid-commit leaves the
    transaction to PostgreSQL, all or nothing, and its after-commit jobs to the sweeper.
    """
    stack: AsyncExitStack = request.scope[FUNCTION_STACK]
    return stack.enter_async_context(context)


async def get_session(request: Request) -> AsyncSession:
    """One session per request, from `app.state.request_sessions` (tests put their own there);
    its unit of work ends before the response is sent (`enter_until_response`)."""
    request_sessions: RequestSessions = request.app.state.request_sessions
    return await enter_until_response(request, request_sessions(request.method))


# One per request: FastAPI's dependency cache gives every dependency of the request the same one.
SessionDep = Annotated[AsyncSession, Depends(get_session)]
