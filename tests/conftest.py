"""Test harness: real PostgreSQL and Redis, migrated once per run, one rolled-back transaction per test.

By default the suite starts the embedded servers itself (a fresh machine needs nothing
else). `APPS_API_TEST_DATABASE_URL` / `APPS_API_TEST_REDIS_URL` point it at other servers.
Each run migrates a database of its own (created and dropped here), so runs never collide.
Under pytest-xdist (scripts/test.sh) each test process is a run of its own: its own database,
queue name and embedded Redis (or, on a configured Redis, a database number of its own).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from apps_api.embedded import start_postgres, start_redis
from apps_api.kit.crypto import new_encryption_key
from apps_api.kit.db import statement_cache_options, unit_of_work, write_transaction
from apps_api.kit.driver import ReadConnection, WriteConnection
from apps_api.main import create_app
from apps_api.migrate import upgrade
from apps_api.settings import Settings, get_settings, to_asyncpg_url
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.redis_cleanup import remove_queue_keys

# Fixtures shared across folders (tests/fixtures/): registered once here, so that a session-scoped
# one (a browser, a server) is one per run, not one per module that imports it.
pytest_plugins = [
    "tests.fixtures.browser",
    "tests.fixtures.delivery",
    "tests.fixtures.live_server",
    "tests.fixtures.markers",
]

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = secrets.token_hex(4)
# App secrets are encrypted at rest under this run's key (workers inherit it with the settings).
TEST_ENCRYPTION_KEY = new_encryption_key()


def _with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (keeps host/socket parameters)."""
    from sqlalchemy.engine import make_url

    return make_url(to_asyncpg_url(url)).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str]:
    configured = os.environ.get("APPS_API_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    server, url = start_postgres(ROOT / ".apps-api-test" / "postgres")
    yield url
    server._cleanup()


def _own_redis_database(url: str) -> str:
    """Test process N of pytest-xdist (`gwN`) uses database (D + N) % 16 of the Redis at `url`.

    The run's keys carry its queue name, but the login throttle's do not (they are the
    service's, shared by every API process), and the isolation matrix clears them all.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    database = (int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))) % 16
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("APPS_API_TEST_REDIS_URL")
    if configured:
        yield _own_redis_database(configured)
        return
    # A server per run: parallel runs must not stop each other's Redis.
    with tempfile.TemporaryDirectory(prefix="apps-api-redis-") as state:
        process, url = start_redis(Path(state))
        assert process is not None
        yield url
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def direct_database_url(database_server_url: str) -> Iterator[str]:
    """The run's own database, migrated, straight on the PostgreSQL server."""
    name = f"apps_api_test_{RUN_ID}"
    admin_url = _with_database(database_server_url, "postgres").replace("postgresql+asyncpg", "postgresql")

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = _with_database(database_server_url, name)
    upgrade(url)
    yield url
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# `APPS_API_TEST_PGBOUNCER=1`: the service and the tests reach the database through a real
# PgBouncer in transaction pooling mode (started here), as behind a pooler in production;
# migrations and the worker's LISTEN go straight to PostgreSQL (README, Running at scale).
PGBOUNCER_MODE = os.environ.get("APPS_API_TEST_PGBOUNCER", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def database_url(direct_database_url: str) -> Iterator[str]:
    if not PGBOUNCER_MODE:
        yield direct_database_url
        return
    from tests.fixtures.pgbouncer import pgbouncer

    with pgbouncer(direct_database_url) as bounced:
        yield bounced


@pytest.fixture(scope="session")
def settings(database_url: str, direct_database_url: str, redis_url: str) -> Iterator[Settings]:
    """Settings for the whole run, also exported so that subprocesses (workers) inherit them."""
    pooler = (
        {"APPS_API_DB_STATEMENT_CACHE_SIZE": "0", "APPS_API_LISTEN_DATABASE_URL": direct_database_url}
        if PGBOUNCER_MODE
        else {}
    )
    env = {
        **pooler,
        "APPS_API_DATABASE_URL": database_url,
        "APPS_API_REDIS_URL": redis_url,
        "APPS_API_SECRET_KEY": f"test-secret-{RUN_ID}",
        "APPS_API_QUEUE_NAME": f"apps_api_test:{RUN_ID}",
        "APPS_API_OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8",
        "APPS_API_INGEST_SERVICE_KEY": f"ingest-{RUN_ID}",
        "APPS_API_METRICS_TOKEN": f"metrics-{RUN_ID}",
        "APPS_API_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    }
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield get_settings()
    # Leave nothing of this run in Redis (it may be shared); the queue name is the namespace.
    asyncio.run(remove_queue_keys(redis_url, env["APPS_API_QUEUE_NAME"]))
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        settings.async_database_url, pool_size=5, connect_args=statement_cache_options(settings)
    )
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def arq_pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=settings.queue_name
    )
    yield pool
    await pool.aclose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session inside the test's outer transaction; its commits only release savepoints."""
    async with _nested_session(connection) as session:
        yield session


def _nested_session(connection: AsyncConnection) -> AsyncSession:
    return AsyncSession(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def app(settings: Settings, connection: AsyncConnection, arq_pool: ArqRedis) -> Any:
    """The app with each request in a session of its own, nested in the test's transaction.

    Like production, a request sees only what was flushed before it and its rollback
    discards only its own work.
    """
    app = create_app(settings)

    @asynccontextmanager
    async def request_sessions(method: str) -> AsyncIterator[AsyncSession]:
        async with _nested_session(connection) as request_session, unit_of_work(request_session):
            yield request_session

    @asynccontextmanager
    async def read_connections() -> AsyncIterator[ReadConnection]:
        # The test's own transaction, so a GET sees what the test (and earlier requests) wrote.
        yield await read_connection_of(connection)

    @asynccontextmanager
    async def write_connections() -> AsyncIterator[WriteConnection]:
        # A savepoint of the test's own transaction: committing releases it, an error rolls it back.
        driver = (await read_connection_of(connection)).driver

        async def invalidate(exc: BaseException) -> None:
            await connection.invalidate(exc)

        async with write_transaction(driver, invalidate) as db:
            yield db

    app.state.request_sessions = request_sessions
    app.state.read_connections = read_connections
    app.state.write_connections = write_connections
    app.state.arq = arq_pool
    return app


async def read_connection_of(connection: AsyncConnection) -> ReadConnection:
    """A `ReadConnection` on the test's connection, inside its outer transaction.

    SQLAlchemy sends the outer transaction's BEGIN with its first statement: begun here if
    nothing ran yet, or a GET's statements (sent straight to asyncpg) would run outside it.
    """
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not driver.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")

    async def invalidate(exc: BaseException) -> None:
        await connection.invalidate(exc)

    return ReadConnection(driver, invalidate)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    # A client address of its own per test: login throttling counts failures per address, and
    # one test's failed logins must not lock out the next test.
    address = f"127.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def tenant(session: AsyncSession) -> Tenant:
    """An organization with both features and a user with every permission."""
    return await make_tenant(session, name="Acme", features=["apps", "app_provider"])


@pytest.fixture
async def other_tenant(session: AsyncSession) -> Tenant:
    return await make_tenant(session, name="Globex", features=["apps", "app_provider"])
