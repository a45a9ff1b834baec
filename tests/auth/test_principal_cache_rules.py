"""The per-process cache of API token principals (auth/principal_cache.py, issue 28), in process:
what a hit shares, rows read before a change, time, size, on and off, and a notification that
arrives while a request is already on its way to the cache. Across processes:
test_principal_cache.py.
"""

from __future__ import annotations

import asyncio
import os
import select
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth import service
from apps_api.auth.principal_cache import (
    CHANNEL,
    PrincipalCache,
    PrincipalListener,
    listen_url,
    listening_connection,
    unread_check,
)
from apps_api.auth.service import authenticate_token
from apps_api.kit.security import digest
from apps_api.models import ApiToken
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant
from tests.fixtures.webhooks import eventually


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The token lookups that reached the database."""
    seen: list[str] = []
    original = service._TOKEN_PRINCIPAL.fetch

    async def fetch(session: AsyncSession, **values: Any) -> Any:
        seen.append(service._TOKEN_PRINCIPAL.sql)
        return await original(session, **values)

    monkeypatch.setattr(service._TOKEN_PRINCIPAL, "fetch", fetch)
    return seen


def listening_cache(**options: Any) -> PrincipalCache:
    cache = PrincipalCache(**{"size": 100, "seconds": 60, **options})
    cache.turn_on()
    return cache


async def test_a_hit_saves_the_round_trip_and_shares_nothing(
    session: AsyncSession, tenant: Tenant, fetches: list[str]
) -> None:
    cache = listening_cache()
    first = await authenticate_token(session=session, key=tenant.token, cache=cache)
    second = await authenticate_token(session=session, key=tenant.token, cache=cache)
    assert first is not None and second is not None and first is not second
    assert len(fetches) == 1
    assert second.permissions == first.permissions and second.user_id == tenant.user.id
    # A request's ORM objects are built from a copy of the row: changing them changes no cached row.
    session.expunge(tenant.user)
    assert second.user is not tenant.user
    second.user.permissions.clear()
    session.expunge(second.user)
    third = await authenticate_token(session=session, key=tenant.token, cache=cache)
    assert third is not None and sorted(third.user_value("permissions")) == ["reports", "settings", "users"]
    assert len(fetches) == 1


async def test_a_row_read_before_a_change_is_not_kept_after_its_flush(
    session: AsyncSession, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the lookup reads the row, the token is revoked and the revocation's notification
    empties the cache, then the lookup stores what it read. The generation keeps it out."""
    cache = listening_cache()
    statement = service._TOKEN_PRINCIPAL
    original = statement.fetch

    async def read_then_revoked(session_: AsyncSession, **values: Any) -> Any:
        rows = await original(session_, **values)
        await session.execute(
            update(ApiToken).where(ApiToken.key_digest == digest(tenant.token)).values(revoked_at=utcnow())
        )
        cache.flush()  # the revocation's NOTIFY, heard while this lookup was under way
        return rows

    monkeypatch.setattr(statement, "fetch", read_then_revoked)
    # Read before the revocation: this one request passes, as it would have without a cache.
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is not None
    monkeypatch.setattr(statement, "fetch", original)
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is None


async def test_time_decides_at_every_hit(session: AsyncSession, tenant: Tenant, fetches: list[str]) -> None:
    now = [0.0]
    cache = listening_cache(seconds=60, clock=lambda: now[0])
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is not None
    now[0] = 59.0
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is not None
    assert len(fetches) == 1
    now[0] = 60.0  # too old: read again
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is not None
    assert len(fetches) == 2

    # A token that expires while cached: refused at its expiry, with no notification.
    expires_at = utcnow() + timedelta(seconds=1.5)
    await session.execute(
        update(ApiToken).where(ApiToken.key_digest == digest(tenant.token)).values(expires_at=expires_at)
    )
    cache.flush()
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is not None
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is not None
    assert len(fetches) == 3
    await eventually(lambda: utcnow() > expires_at, timeout=5, what="the expiry")
    assert await authenticate_token(session=session, key=tenant.token, cache=cache) is None


async def test_the_subscription_is_checked_at_every_hit(
    session: AsyncSession, tenant: Tenant, fetches: list[str]
) -> None:
    cache = listening_cache()
    ends_at = utcnow() + timedelta(seconds=1.5)
    tenant.organization.subscription_expires_at = ends_at
    await session.flush()
    principal = await authenticate_token(session=session, key=tenant.token, cache=cache)
    assert principal is not None and principal.has_active_subscription()
    await eventually(lambda: utcnow() > ends_at, timeout=5, what="the subscription's end")
    cached = await authenticate_token(session=session, key=tenant.token, cache=cache)
    assert cached is not None and not cached.has_active_subscription()
    assert len(fetches) == 1  # the second was a hit


def test_least_recently_used_entries_go_first() -> None:
    cache = listening_cache(size=2)
    row = {"id": uuid.uuid4(), "user_permissions": ["settings"]}
    for key in (b"a", b"b"):
        cache.put(key, row, generation=cache.generation, expires_at=None)
    assert cache.get(b"a") == row  # now b is the least recently used
    cache.put(b"c", row, generation=cache.generation, expires_at=None)
    assert cache.entries == 2
    assert cache.get(b"b") is None
    assert cache.get(b"a") == row and cache.get(b"c") == row


def test_off_until_listening_and_empty_after() -> None:
    cache = PrincipalCache(size=10, seconds=60)
    row = {"id": uuid.uuid4()}
    cache.put(b"a", row, generation=cache.generation, expires_at=None)
    assert cache.get(b"a") is None and cache.entries == 0  # not listening yet: nothing kept
    cache.turn_on()
    noted = cache.generation
    cache.put(b"a", row, generation=noted, expires_at=None)
    assert cache.get(b"a") == row
    cache.turn_off()  # LISTEN lost
    assert cache.entries == 0 and cache.get(b"a") is None
    cache.turn_on()
    cache.put(b"a", row, generation=noted, expires_at=None)  # read before the connection was lost
    assert cache.entries == 0
    assert not PrincipalCache(size=10, seconds=0).enabled and not PrincipalCache(size=0, seconds=60).enabled


def _notify_blocking(settings: Settings) -> None:
    """NOTIFY, committed, while this thread's event loop stands still (it reads nothing meanwhile)."""

    async def notify() -> None:
        connection = await asyncpg.connect(listen_url(settings))
        try:
            await connection.execute(f"NOTIFY {CHANNEL}")
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, notify()).result(timeout=30)


async def test_no_hit_between_a_notification_arriving_and_its_listeners_running(settings: Settings) -> None:
    """The two moments before asyncpg's listeners run: the notification still unread in the LISTEN
    socket (a request task ahead of the event loop's read), and read and parsed with its listeners
    only scheduled (a request task scheduled by an earlier callback of the same turn of the loop).
    Neither serves a hit."""
    cache = PrincipalCache(size=10, seconds=60)
    connection = await listening_connection(cache, settings)
    try:
        cache.turn_on(unread_check(connection))
        row = {"id": uuid.uuid4()}
        cache.put(b"k", row, generation=cache.generation, expires_at=None)
        assert cache.get(b"k") == row  # nothing unread: a hit

        # No await from here on: the event loop neither reads the socket nor runs a callback.
        _notify_blocking(settings)
        socket_fd = connection._transport.get_extra_info("socket").fileno()
        assert select.select([socket_fd], [], [], 10)[0], "the notification did not arrive"
        assert cache.get(b"k") is None  # unread in the socket: a miss...
        assert cache.entries == 1  # ...though nothing has emptied the cache yet

        # What the event loop's reader does: read the bytes and hand them to asyncpg's protocol.
        connection._protocol.data_received(os.read(socket_fd, 65536))
        assert cache.entries == 0  # emptied while parsed, before any scheduled listener ran
        assert cache.get(b"k") is None

        cache.put(b"k", row, generation=cache.generation, expires_at=None)
        assert cache.get(b"k") == row  # all read: hits again
    finally:
        await connection.close()


Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter


class FreezingProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding while keeping every socket open: what a
    LISTEN connection sees when its server's host vanishes without a word (no FIN, no RST)."""

    def __init__(self, upstream: Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]):
        self._upstream = upstream
        self.frozen = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> FreezingProxy:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accepted(self, client_reader: Reader, client_writer: Writer) -> None:
        server_reader, server_writer = await self._upstream()
        self._writers += [client_writer, server_writer]
        for reader, writer in ((client_reader, server_writer), (server_reader, client_writer)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.frozen:  # frozen: swallowed, as by a host that is gone
                writer.write(data)
                await writer.drain()
        writer.close()


def upstream_of(url: str) -> Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    """Opens a connection to the PostgreSQL of `url` (TCP, or the embedded server's Unix socket)."""
    parsed = make_url(url)
    host, port = parsed.host or parsed.query.get("host") or "127.0.0.1", parsed.port or 5432
    assert isinstance(host, str)
    if host.startswith("/"):
        return lambda: asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
    return lambda: asyncio.open_connection(host, port)


async def test_a_listen_connection_that_stops_answering_turns_the_cache_off(
    settings: Settings, direct_database_url: str
) -> None:
    """No notification can arrive on a connection whose server went silent, so the cache must not
    stay on: the ping (`APPS_API_PRINCIPAL_LISTEN_PING_SECONDS`) notices it, and the cache is
    back, emptied, once a new connection listens."""
    async with FreezingProxy(upstream_of(direct_database_url)) as proxy:
        through_proxy = (
            make_url(direct_database_url)
            .set(host="127.0.0.1", port=proxy.port, query={})
            .render_as_string(hide_password=False)
        )
        ping = 0.3
        cache = PrincipalCache(size=10, seconds=60)
        listener = PrincipalListener(
            cache,
            settings.model_copy(
                update={"listen_database_url": through_proxy, "principal_listen_ping_seconds": ping}
            ),
        )
        listener.start()
        try:
            await eventually(lambda: cache.is_on, timeout=30, what="the cache to listen")
            listening = cache.generation
            await asyncio.sleep(ping * 4)  # several pings, all answered: still on, never emptied
            assert cache.is_on and cache.generation == listening

            proxy.frozen = True
            cache.put(b"k", {"id": 1}, generation=cache.generation, expires_at=None)
            await eventually(lambda: not cache.is_on, timeout=ping * 10, what="the unanswered ping")
            assert cache.get(b"k") is None and cache.entries == 0

            proxy.frozen = False  # the next connection gets through (the frozen one is given up)
            await eventually(lambda: cache.is_on, timeout=30, what="the cache to listen again")
            assert cache.entries == 0
        finally:
            await listener.stop()
    assert not cache.is_on
