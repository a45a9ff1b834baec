"""The per-process cache of API token principals (auth/principal_cache.py, issue 28).

Across two real API processes (`apps-api serve`), A and B: B's cache is warmed with a token (its
/metrics shows the hit, so nothing here can pass with the cache off), the principal is changed
through A (operator API, owner API), the CLI or raw SQL, and B's very next request, sent as soon
as the change is committed, is refused; many rounds each, so a race would show. Then the cache
with its LISTEN connection down. The cache's own rules, in process: test_principal_cache_rules.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.auth.principal_cache import (
    APPLICATION_NAME,
    CHANNEL,
)
from apps_api.kit.security import digest
from apps_api.models import ApiToken, User
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.delivery.test_webhooks_delivery import World
from tests.fixtures.factories import Tenant
from tests.fixtures.live_server import Serve, serve
from tests.fixtures.tcp import bytes_received
from tests.fixtures.webhooks import cleanup, eventually
from tests.operations.test_cli import admin

OPERATOR = "/internal/v1/organizations"
HITS = ("apps_api_principal_cache_lookups_total", {"result": "hit"})
HEARD = ("apps_api_principal_cache_flushes_total", {"reason": "notification"})


@dataclass
class Processes:
    a: Serve
    b: Serve  # its LISTEN connection logs in as `listen_role`
    listen_role: str
    postgresql: tuple[str, int]  # the address B's LISTEN connection goes to


@pytest.fixture(scope="module")
async def listen_role(engine: AsyncEngine) -> AsyncIterator[tuple[str, str]]:
    """A role of B's LISTEN connection alone: `NOLOGIN` keeps B from listening again at will."""
    role, password = f"apps_api_listen_{secrets.token_hex(4)}", secrets.token_hex(16)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield role, password
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"DROP ROLE {role}")


@pytest.fixture(scope="module")
async def processes(direct_database_url: str, listen_role: tuple[str, str]) -> AsyncIterator[Processes]:
    role, password = listen_role
    # Straight to PostgreSQL, as APPS_API_LISTEN_DATABASE_URL is behind PgBouncer.
    listen_url = (
        make_url(direct_database_url)
        .set(drivername="postgresql", username=role, password=password)
        .render_as_string(hide_password=False)
    )
    # B's LISTEN connection never pings during the module: a ping's answer is bytes on the socket
    # whose count tells whether the notification had arrived (`Rounds.answer`), and one landing
    # in a round made a stale answer of PostgreSQL's delivery look like a cache bug (CI, stop 32).
    quiet = {"APPS_API_PRINCIPAL_LISTEN_PING_SECONDS": "3600"}
    with serve() as a, serve(APPS_API_LISTEN_DATABASE_URL=listen_url, **quiet) as b:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        url = make_url(direct_database_url)
        yield Processes(a, b, role, (socket.gethostbyname(url.host or "127.0.0.1"), url.port or 5432))


@pytest.fixture
async def world(engine: AsyncEngine, arq_pool: ArqRedis) -> AsyncIterator[World]:
    world = World(engine, arq_pool, [], [])
    yield world
    await cleanup(engine, world.organization_ids, world.app_ids)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def operator(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.accepted_service_keys[0]}"}


def token(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


def settings_path(organization_id: uuid.UUID) -> str:
    """A collection that needs an active subscription and `settings`."""
    return f"/api/v5/orgs/{organization_id}/app_installations"


def users_path(organization_id: uuid.UUID) -> str:
    """A collection that needs an active subscription and `users`."""
    return f"/api/v5/orgs/{organization_id}/users"


async def sample(http: httpx.AsyncClient, server: Serve, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0.0 when absent)."""
    metrics_token = os.environ["APPS_API_METRICS_TOKEN"]
    response = await http.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    assert response.status_code == 200, response.text
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    found = re.search(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$", response.text, re.MULTILINE)
    return float(found.group(2)) if found else 0.0


async def cache_on(http: httpx.AsyncClient, server: Serve) -> bool:
    return await sample(http, server, "apps_api_principal_cache_on") == 1.0


async def hits(http: httpx.AsyncClient, server: Serve) -> float:
    return await sample(http, server, HITS[0], **HITS[1])


async def heard(http: httpx.AsyncClient, server: Serve) -> float:
    """The notifications `server` has heard (each emptied its cache)."""
    return await sample(http, server, HEARD[0], **HEARD[1])


async def hears(http: httpx.AsyncClient, server: Serve, since: float) -> None:
    """Wait until `server` has heard a notification more than `since` (only to warm up: the
    request after a change is sent at once)."""
    await eventually(lambda: _more(heard(http, server), since), timeout=30, what="the change's notification")


async def warm(http: httpx.AsyncClient, server: Serve, key: str, path: str, engine: AsyncEngine) -> None:
    """Ask `server` with `key` until one answer came from its cache (a hit in its /metrics).

    First, `server` hears a notification sent now: notifications arrive in commit order, so
    every earlier one (the test's set-up) has arrived too and none can empty the cache later.
    """
    await eventually(lambda: cache_on(http, server), timeout=30, what="the cache to listen")
    since = await heard(http, server)
    async with engine.begin() as connection:
        await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    await hears(http, server, since)

    async def served_from_cache() -> bool:
        before = await hits(http, server)
        response = await http.get(server.url + path, headers=token(key))
        assert response.status_code == 200, response.text
        return await hits(http, server) > before

    await eventually(served_from_cache, timeout=30, what="a cache hit")


async def status(http: httpx.AsyncClient, server: Serve, key: str, path: str) -> int:
    return (await http.get(server.url + path, headers=token(key))).status_code


async def minted(
    http: httpx.AsyncClient, settings: Settings, server: Serve, tenant: Tenant
) -> dict[str, Any]:
    """A new API token of the tenant's user, minted through the operator API of `server`."""
    response = await http.post(
        f"{server.url}{OPERATOR}/id:{tenant.org_id}/users/id:{tenant.user.id}/tokens",
        headers=operator(settings),
    )
    assert response.status_code == 201, response.text
    minted_token: dict[str, Any] = response.json()
    return minted_token


# --- a change through one process (or any writer) reaches the other's cache -----------------------
#
# Each test runs ROUNDS rounds: warm B's cache with the token (a hit proven by B's /metrics), make
# the change through A (or commit it directly), and send B the very next request at once, without
# waiting for B to have heard of it.
#
# What B cannot help: PostgreSQL writes the notification to B's LISTEN socket a moment after the
# commit (the committing backend signals B's backend, which must then be scheduled), and a request
# that reaches B before that is answered from the row as it was. So each round reads, just before
# B's request, the kernel's count of bytes received on B's LISTEN socket (tcp_info, ~50 µs): once
# it has grown since the change began, the notification is in B's socket and a stale answer fails
# the test (nothing else arrives on that socket: B's LISTEN connection does not ping here). On
# the embedded PostgreSQL, which listens on a Unix socket only, there is no such count: B's own
# count of notifications heard, asked just before the request, judges instead (weaker: a
# notification still unread in B's socket counts as not arrived; the TCP runs of CI judge that).
# A stale answer while nothing had arrived yet is PostgreSQL's delivery, counted and shown;
# nothing else is allowed.

ROUNDS = 20
# `apps-api admin` is a process of its own (about a second each): fewer rounds, each two calls.
CLI_ROUNDS = 5


@dataclass
class Rounds:
    """B's answers to the request sent at once after each change."""

    what: str
    processes: Processes
    engine: AsyncEngine
    rounds: int = ROUNDS
    stale: list[str] = field(default_factory=list)  # the notification was in B's socket already
    undelivered: list[str] = field(default_factory=list)  # stale, PostgreSQL had not written yet
    arrived: int = 0  # rounds whose notification was in B's socket before B's request
    _socket: tuple[str, int] | None = None
    _before: int | None = None
    _heard_before: float = 0.0

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rounds))

    async def change_begins(self) -> None:
        """Note how many bytes B's LISTEN socket has received so far (call after warming up)."""
        async with self.engine.connect() as connection:
            found = (
                await connection.execute(
                    text(
                        "SELECT host(client_addr), client_port FROM pg_stat_activity "
                        "WHERE application_name = :name AND usename = :role"
                    ),
                    {"name": APPLICATION_NAME, "role": self.processes.listen_role},
                )
            ).one_or_none()
        self._socket = None if found is None or found[0] is None else (found[0], found[1])
        self._before = self._received()
        if self._socket is None:
            async with httpx.AsyncClient(timeout=30) as client:
                self._heard_before = await heard(client, self.processes.b)

    def _received(self) -> int | None:
        if self._socket is None:
            return None
        return bytes_received(*self._socket, *self.processes.postgresql)

    async def answer(self, number: int, http: httpx.AsyncClient, key: str, path: str, expected: int) -> None:
        """Send B the request now, and judge its answer."""
        now = self._received()
        if self._socket is not None:
            arrived = self._before is None or now is None or now > self._before
        else:
            # B's LISTEN connection is on a Unix socket (the embedded PostgreSQL listens on no TCP
            # port): no kernel byte count. What B itself says it has heard (each notification
            # empties its cache as it is parsed, and counts) judges instead, asked just before
            # the request: once heard, a stale answer fails. Judging every round as arrived, as
            # this did before, failed the README's run on PostgreSQL's own delivery (stop 32).
            arrived = await heard(http, self.processes.b) > self._heard_before
        self.arrived += arrived
        got = await status(http, self.processes.b, key, path)
        if got != expected:
            delta = None if now is None or self._before is None else now - self._before
            judged = f"round {number}: {got}, not {expected} (+{delta} bytes on B's LISTEN socket)"
            (self.stale if arrived else self.undelivered).append(judged)

    def verdict(self) -> None:
        summary = (
            f"{self.what}: {self.rounds} rounds, the notification in B's socket before B's request in "
            f"{self.arrived}; stale although it was: {self.stale}; stale before PostgreSQL had written "
            f"it: {self.undelivered}"
        )
        print(summary)
        assert not self.stale, summary


def user_tokens(organization_id: uuid.UUID, user_id: Any) -> str:
    return f"{OPERATOR}/id:{organization_id}/users/id:{user_id}/tokens"


@pytest.mark.subprocess
async def test_a_token_revoked_through_a_is_refused_by_b_at_once(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    tenant, a, b = await world.tenant("Cache revoke"), processes.a, processes.b
    path, rounds = settings_path(tenant.org_id), Rounds("revoked through A", processes, engine)
    for number in rounds:
        new = await minted(http, settings, a, tenant)
        await warm(http, b, new["token"], path, engine)
        await rounds.change_begins()
        revoked = await http.delete(
            f"{a.url}{user_tokens(tenant.org_id, tenant.user.id)}/{new['id']}", headers=operator(settings)
        )
        assert revoked.status_code == 204, revoked.text
        await rounds.answer(number, http, new["token"], path, 401)
    rounds.verdict()


@pytest.mark.subprocess
async def test_a_user_deleted_through_a_is_refused_by_b_at_once(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    tenant, a, b = await world.tenant("Cache delete"), processes.a, processes.b
    path, rounds = settings_path(tenant.org_id), Rounds("user deleted through A", processes, engine)
    for number in rounds:
        created = await http.post(
            f"{a.url}{OPERATOR}/id:{tenant.org_id}/users",
            json={"email": f"cache-{uuid.uuid4().hex[:8]}@example.com", "permissions": ["settings"]},
            headers=operator(settings),
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        new = await http.post(f"{a.url}{user_tokens(tenant.org_id, user_id)}", headers=operator(settings))
        assert new.status_code == 201, new.text
        key = new.json()["token"]
        await warm(http, b, key, path, engine)
        await rounds.change_begins()
        deleted = await http.delete(
            f"{a.url}{OPERATOR}/id:{tenant.org_id}/users/id:{user_id}", headers=operator(settings)
        )
        assert deleted.status_code == 204, deleted.text
        await rounds.answer(number, http, key, path, 401)
    rounds.verdict()


@pytest.mark.subprocess
async def test_a_permission_changed_through_a_holds_in_b_at_once(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """Taken away (B's next request is a 403) and given back (B's next request is a 200)."""
    tenant, a, b = await world.tenant("Cache permission"), processes.a, processes.b
    user = f"{a.url}{OPERATOR}/id:{tenant.org_id}/users/id:{tenant.user.id}"
    key, settings_at, users_at = tenant.token, settings_path(tenant.org_id), users_path(tenant.org_id)
    taken = Rounds("settings taken away through A", processes, engine)
    given = Rounds("settings given back through A", processes, engine)
    for number in taken:
        await warm(http, b, key, settings_at, engine)
        await taken.change_begins()
        changed = await http.patch(user, json={"permissions": ["users"]}, headers=operator(settings))
        assert changed.status_code == 200, changed.text
        await taken.answer(number, http, key, settings_at, 403)

        await warm(http, b, key, users_at, engine)  # B caches the row without `settings`
        await given.change_begins()
        both = {"permissions": ["settings", "users"]}
        changed = await http.patch(user, json=both, headers=operator(settings))
        assert changed.status_code == 200, changed.text
        await given.answer(number, http, key, settings_at, 200)
    taken.verdict()
    given.verdict()


@pytest.mark.subprocess
async def test_a_subscription_ended_by_the_cli_is_refused_by_b_at_once(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    tenant, b = await world.tenant("Cache subscription"), processes.b
    path = settings_path(tenant.org_id)
    rounds = Rounds("subscription ended by the CLI", processes, engine, CLI_ROUNDS)
    for number in rounds:
        await warm(http, b, tenant.token, path, engine)
        await rounds.change_begins()
        ended = await asyncio.to_thread(admin, "set-subscription", "--org", str(tenant.org_id), "--days", "0")
        assert ended["id"] == str(tenant.org_id)
        await rounds.answer(number, http, tenant.token, path, 403)
        await asyncio.to_thread(admin, "set-subscription", "--org", str(tenant.org_id), "--days", "30")
    rounds.verdict()


@pytest.mark.subprocess
async def test_a_token_expired_early_by_raw_sql_is_refused_by_b_at_once(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    tenant, b = await world.tenant("Cache expiry"), processes.b
    path, rounds = settings_path(tenant.org_id), Rounds("token expired by raw SQL", processes, engine)
    of_the_token = update(ApiToken).where(ApiToken.key_digest == digest(tenant.token))
    for number in rounds:
        await warm(http, b, tenant.token, path, engine)
        await rounds.change_begins()
        async with engine.begin() as connection:
            await connection.execute(of_the_token.values(expires_at=utcnow() - timedelta(seconds=1)))
        await rounds.answer(number, http, tenant.token, path, 401)
        async with engine.begin() as connection:
            await connection.execute(of_the_token.values(expires_at=None))
    rounds.verdict()


@pytest.mark.subprocess
async def test_an_uninstall_through_a_refuses_the_app_user_token_in_b_at_once(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    provider, installer = await world.tenant("Cache provider"), await world.tenant("Cache installer")
    app = await world.app(
        provider, is_app_user_required=True, app_user_default_first_name="Bot", app_user_default_last_name="C"
    )
    a, b, path = processes.a, processes.b, settings_path(installer.org_id)
    rounds = Rounds("app uninstalled through A", processes, engine)
    for number in rounds:
        installation = await world.install(installer, app, scopes=["settings"])
        created = await http.post(
            f"{a.url}/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}"
            f"/installations/{installation.id}/app_user_tokens",
            headers=provider.headers,
        )
        assert created.status_code == 201, created.text
        app_user_key = created.json()["token"]
        await warm(http, b, app_user_key, path, engine)
        await rounds.change_begins()
        uninstalled = await http.delete(
            f"{a.url}/api/v5/orgs/{installer.org_id}/app_installations/{installation.id}",
            headers=installer.headers,
        )
        assert uninstalled.status_code == 204, uninstalled.text
        await rounds.answer(number, http, app_user_key, path, 401)
    rounds.verdict()


# --- LISTEN lost: the cache is off until B listens again -----------------------------------------


@pytest.mark.subprocess
async def test_the_cache_is_off_while_its_listen_connection_is_down(
    processes: Processes, world: World, http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    tenant, b = await world.tenant("Cache listen"), processes.b
    await warm(http, b, tenant.token, settings_path(tenant.org_id), engine)

    async with engine.begin() as connection:
        # B cannot listen again until its role may log in again.
        await connection.exec_driver_sql(f"ALTER ROLE {processes.listen_role} NOLOGIN")
        killed = (
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND usename = :role"
                ),
                {"name": APPLICATION_NAME, "role": processes.listen_role},
            )
        ).scalars()
        assert list(killed) == [True]
    try:
        await eventually(lambda: _not(cache_on(http, b)), timeout=30, what="B to notice its lost LISTEN")
        # Nothing B hears of: its LISTEN is down.
        async with engine.begin() as connection:
            await connection.execute(
                update(User).where(User.id == tenant.user.id).values(permissions=["users"])
            )
        before = await hits(http, b)
        assert await status(http, b, tenant.token, settings_path(tenant.org_id)) == 403
        assert await status(http, b, tenant.token, users_path(tenant.org_id)) == 200
        assert await hits(http, b) == before  # every lookup went to the database
    finally:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"ALTER ROLE {processes.listen_role} LOGIN")

    await eventually(lambda: cache_on(http, b), timeout=30, what="B to listen again")
    # Listening again, B serves no row from before: the change made meanwhile holds.
    assert await status(http, b, tenant.token, settings_path(tenant.org_id)) == 403
    await warm(http, b, tenant.token, users_path(tenant.org_id), engine)


async def _not(check: Any) -> bool:
    return not await check


async def _more(value: Any, than: float) -> bool:
    return bool(await value > than)
