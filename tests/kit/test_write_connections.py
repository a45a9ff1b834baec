"""kit/db.engine_write_connections: a write's transaction on a plain pooled connection.

On the production engine (a pool of one connection, a temporary table of its own): committed when
the block ends and only then the after-commit callbacks; rolled back, callbacks dropped, on any
error; errors raised as SQLAlchemy's; a connection whose backend died leaves the pool. Through
the application: the one route that writes this way (POST owned_apps) commits or rolls back
before its response starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from apps_api.kit.db import after_commit, create_engine, engine_write_connections, write_transaction
from apps_api.kit.driver import WriteConnection, run_guarded
from apps_api.settings import Settings
from tests.conftest import read_connection_of
from tests.fixtures.factories import Tenant
from tests.fixtures.recording import recording_response_starts

BODY = {
    "name": "Written on a plain connection",
    "description": "One transaction a request.",
    "is_app_user_required": False,
    "terms_of_service_url": "https://apps.example.com/terms",
    "privacy_policy_url": "https://apps.example.com/privacy",
}


@pytest.fixture
async def one_connection_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The production engine with a pool of exactly one connection, holding a temporary table."""
    engine = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    async with engine.connect() as connection:
        await connection.exec_driver_sql("CREATE TEMPORARY TABLE written (value int PRIMARY KEY)")
        await connection.commit()
    yield engine
    await engine.dispose()


async def _written(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT value FROM written ORDER BY value"))).scalars())


async def test_it_commits_at_the_end_then_runs_the_after_commit_callbacks(
    one_connection_engine: AsyncEngine,
) -> None:
    write_connections = engine_write_connections(one_connection_engine)
    seen: list[tuple[bool, int]] = []
    async with write_connections() as db:
        await db.driver.execute("INSERT INTO written VALUES (1)")

        async def callback() -> None:
            # The transaction is over, its row there for the next one.
            seen.append(
                (db.driver.is_in_transaction(), await db.driver.fetchval("SELECT max(value) FROM written"))
            )

        after_commit(db, callback)
        assert db.driver.is_in_transaction()
    assert seen == [(False, 1)]
    assert await _written(one_connection_engine) == [1]
    assert one_connection_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_any_error_rolls_back_and_drops_the_callbacks(one_connection_engine: AsyncEngine) -> None:
    write_connections = engine_write_connections(one_connection_engine)
    seen: list[str] = []

    async def callback() -> None:
        seen.append("ran")

    with pytest.raises(LookupError):
        async with write_connections() as db:
            await db.driver.execute("INSERT INTO written VALUES (2)")
            after_commit(db, callback)
            raise LookupError("the service refused")
    # A statement's own error, raised as SQLAlchemy's, in a transaction then rolled back.
    with pytest.raises(IntegrityError):
        async with write_connections() as db:
            await db.driver.execute("INSERT INTO written VALUES (3)")
            await run_guarded(
                lambda: db.driver.execute("INSERT INTO written VALUES (3)"), "INSERT", db.invalidate
            )
    assert seen == []
    assert await _written(one_connection_engine) == []
    assert one_connection_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_commit_that_fails_is_sqlalchemys_error_and_the_callbacks_never_run(
    one_connection_engine: AsyncEngine,
) -> None:
    await _deferred_unique(one_connection_engine)
    write_connections = engine_write_connections(one_connection_engine)
    seen: list[str] = []

    async def callback() -> None:
        seen.append("ran")

    with pytest.raises(IntegrityError):
        async with write_connections() as db:
            # Checked at COMMIT only: the statements pass, the commit fails.
            await db.driver.execute("INSERT INTO deferred VALUES (1), (1)")
            after_commit(db, callback)
    assert seen == []
    assert one_connection_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def _deferred_unique(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE deferred (value int, UNIQUE (value) DEFERRABLE INITIALLY DEFERRED)"
        )
        await connection.commit()


async def test_a_connection_whose_backend_died_leaves_the_pool(
    engine: AsyncEngine, settings: Settings
) -> None:
    one = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    try:
        write_connections = engine_write_connections(one)
        pids = []
        with pytest.raises(DBAPIError) as raised:
            async with write_connections() as db:
                pids.append(await db.driver.fetchval("SELECT pg_backend_pid()"))
                async with engine.connect() as killer:
                    await killer.exec_driver_sql(f"SELECT pg_terminate_backend({pids[0]})")
                while not db.driver.is_closed():
                    await asyncio.sleep(0.01)
        assert raised.value.connection_invalidated
        async with write_connections() as db:
            pids.append(await db.driver.fetchval("SELECT pg_backend_pid()"))
        assert pids[1] != pids[0]
        assert one.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await one.dispose()


def _recording(app: Any, connection: AsyncConnection, events: list[str]) -> Any:
    """The app with its write connections (opened, committed or rolled back) and its response
    start in `events`."""

    @asynccontextmanager
    async def write_connections() -> AsyncIterator[WriteConnection]:
        driver = (await read_connection_of(connection)).driver

        async def invalidate(exc: BaseException) -> None:
            await connection.invalidate(exc)

        events.append("open")
        try:
            async with write_transaction(driver, invalidate) as db:
                yield db
        except BaseException as exc:
            events.append(f"rollback {type(exc).__name__}")
            raise
        events.append("commit")

    app.state.write_connections = write_connections
    return recording_response_starts(app, events)


async def test_creating_an_app_commits_or_rolls_back_before_its_response(
    app: Any, connection: AsyncConnection, tenant: Tenant, other_tenant: Tenant
) -> None:
    events: list[str] = []
    transport = httpx.ASGITransport(app=_recording(app, connection, events))
    created = f"/api/v5/orgs/{tenant.org_id}/owned_apps"
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        cases: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
            (BODY, tenant.headers, 201, "commit"),
            ({**BODY, "name": 5}, tenant.headers, 400, "rollback RequestValidationError"),
            ({**BODY, "is_app_user_required": True}, tenant.headers, 400, "rollback BadRequest"),
            (BODY, {}, 401, "rollback Unauthorized"),
            (BODY, other_tenant.headers, 403, "rollback Forbidden"),
        ]
        for body, headers, status, outcome in cases:
            events.clear()
            response = await client.post(created, json=body, headers=headers)
            assert response.status_code == status, response.text
            assert events == ["open", outcome, f"response {status}"], (status, outcome)
        listed = await client.get(created, headers=tenant.headers)
    assert [item["name"] for item in listed.json()["results"]] == [BODY["name"]]  # the one commit


async def test_the_savepoint_of_the_tests_is_a_transaction_inside_theirs(connection: AsyncConnection) -> None:
    """The test harness's write connections (conftest) nest in the test's transaction."""
    driver: asyncpg.Connection = (await read_connection_of(connection)).driver

    async def invalidate(exc: BaseException) -> None:
        await connection.invalidate(exc)

    await driver.execute("CREATE TEMPORARY TABLE nested (value int)")
    with pytest.raises(LookupError):
        async with write_transaction(driver, invalidate) as db:
            await db.driver.execute("INSERT INTO nested VALUES (1)")
            raise LookupError
    async with write_transaction(driver, invalidate) as db:
        await db.driver.execute("INSERT INTO nested VALUES (2)")
    assert driver.is_in_transaction()  # the test's own, still open
    assert [row["value"] for row in await driver.fetch("SELECT value FROM nested")] == [2]
