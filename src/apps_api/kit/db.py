"""Engine, sessions and the request-scoped unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from apps_api.settings import Settings

AfterCommit = Callable[[], Awaitable[Any]]
_AFTER_COMMIT_KEY = "apps_api.after_commit"


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        # Statement parameters hold app secrets and token digests: never in logs or errors.
        hide_parameters=True,
        # Fail fast when PostgreSQL is down: callers get a 503 instead of a hung request.
        pool_timeout=5,
        connect_args={
            "timeout": 5,
            "server_settings": {"application_name": "apps-api", "timezone": "UTC"},
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: responses are serialized after the unit of work ends.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit callbacks registered on this session."""
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        await callback()


def discard_after_commit(session: AsyncSession) -> None:
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


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed once after the handler."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, unit_of_work(session):
        yield session


# scope="function": the commit happens before the response is sent, so a client
# never sees a 2xx for a change that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
