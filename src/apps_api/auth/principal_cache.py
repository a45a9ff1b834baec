"""The per-process cache of API tokens' principals, emptied on every change by PostgreSQL NOTIFY.

Identifying the caller costs every request a round trip (`auth.service._TOKEN_PRINCIPAL`: the
live token joined to its user, organization and the installation whose app user it is). The
cache keeps that row per token digest, frozen; each request still builds a `Principal` of its
own from a fresh copy, so nothing request-scoped is shared.

Invalidation: statement-level triggers on api_tokens, users, organizations and app_installations
(migrations 1700 and 1800_principal_notify*) send `NOTIFY apps_api_principals` when a change commits,
whoever wrote it, and every API process empties its whole cache when it hears it. So the cache
is on only while its process LISTENs: off until the first LISTEN, emptied and off the moment the
connection is lost, emptied again once LISTEN is back. What a row says about time (the token's
`expires_at`, the subscription's end) is checked at every hit, and no entry outlives
APPS_API_PRINCIPAL_CACHE_SECONDS.

A request that read a row before a change committed must not store it after the change's flush:
it notes the cache's generation before its query and the row is kept only if no flush (and no
switch on or off) happened since.

The guarantee: once a change's notification has reached the listening socket of a process, no
lookup in that process is served from the cache any more; the next request reads the database.
Two moments would otherwise serve a stale hit even so: asyncpg parses the notification as soon
as the event loop reads it but only schedules its listeners (`loop.call_soon`), so a request
task already scheduled could run first; and a notification can sit unread in the socket's
kernel buffer while a request looks up. So the LISTEN connection (`_ListeningConnection`)
empties the cache while parsing, and every hit first polls the socket with a zero timeout (one
poll(2) system call, 2-4 µs on the loaded 2-core test machine, against the database round trip
a hit saves): anything unread makes that hit a miss. What is left is PostgreSQL's own delivery:
the committing backend signals the listening backends at commit, before its client hears of
the commit, and each then writes the notification to its socket; a request to another process
that arrives before that write is answered as one that read the row just before the commit.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import asyncpg
from sqlalchemy.engine import make_url

from apps_api.observability import metrics
from apps_api.settings import Settings, to_asyncpg_url

logger = logging.getLogger(__name__)

CHANNEL: Final = "apps_api_principals"
# The listening connection's name in pg_stat_activity.
APPLICATION_NAME: Final = "apps_api_principal_cache"

_HITS = metrics.PRINCIPAL_CACHE_LOOKUPS.labels(result="hit")
_MISSES = metrics.PRINCIPAL_CACHE_LOOKUPS.labels(result="miss")

# Reconnecting: the first retry soon, then doubling up to the last.
_RETRY_FIRST = 0.1
_RETRY_LAST = 5.0


@dataclass(frozen=True, slots=True)
class _Entry:
    row: Mapping[str, Any]
    stored_at: float
    expires_at: datetime | None


def _frozen(row: Mapping[str, Any]) -> Mapping[str, Any]:
    # The row's arrays (permissions, features, scopes) are lists: tuples here, so no request can
    # change what the next one reads.
    return MappingProxyType(
        {key: tuple(value) if isinstance(value, list) else value for key, value in row.items()}
    )


def _thawed(row: Mapping[str, Any]) -> dict[str, Any]:
    # As the driver returns it: the ORM objects built from it get lists of their own.
    return {key: list(value) if isinstance(value, tuple) else value for key, value in row.items()}


class PrincipalCache:
    """Token digest -> the `_TOKEN_PRINCIPAL` row, least recently used first out, for at most
    `seconds`; off (every lookup goes to the database) until its listener turns it on."""

    def __init__(self, *, size: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.seconds = seconds
        self._clock = clock
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.generation = 0
        self.is_on = False
        # While on: True when the LISTEN socket holds bytes not read yet (maybe a notification).
        self._unread: Callable[[], bool] = _nothing_unread

    @property
    def enabled(self) -> bool:
        """Configured at all (entries and an age above 0): only then is there a listener."""
        return self.size > 0 and self.seconds > 0

    @property
    def entries(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> dict[str, Any] | None:
        """A fresh copy of the row of `digest` while it is valid, else None (go to the database)."""
        if not self.is_on:
            return None
        entry = self._entries.get(digest)
        if entry is None or not self._valid(entry):
            self._entries.pop(digest, None)
            _MISSES.inc()
            return None
        if self._unread():
            # A notification may be waiting to be read: this one request reads the database
            # (committed already, so it reads the change); the flush follows once it is read.
            _MISSES.inc()
            return None
        self._entries.move_to_end(digest)
        _HITS.inc()
        return _thawed(entry.row)

    def _valid(self, entry: _Entry) -> bool:
        if self._clock() - entry.stored_at >= self.seconds:
            return False
        return entry.expires_at is None or entry.expires_at > datetime.now(UTC)

    def put(
        self, digest: bytes, row: Mapping[str, Any], *, generation: int, expires_at: datetime | None
    ) -> None:
        """Keep `row`, read after `generation` was noted, unless the cache was emptied since."""
        if not self.is_on or generation != self.generation:
            return
        self._entries[digest] = _Entry(_frozen(row), self._clock(), expires_at)
        self._entries.move_to_end(digest)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def flush(self, reason: str = "notification") -> None:
        """Empty the cache; rows read before now are not stored any more."""
        self._entries.clear()
        self.generation += 1
        metrics.PRINCIPAL_CACHE_FLUSHES.labels(reason=reason).inc()

    def turn_on(self, unread: Callable[[], bool] | None = None) -> None:
        """LISTEN is up: drop whatever a change unheard meanwhile may have left, then serve;
        `unread` says whether the LISTEN socket holds bytes not read yet."""
        self.flush("listening")
        self._unread = _nothing_unread if unread is None else unread
        self.is_on = True
        metrics.PRINCIPAL_CACHE_ON.set(1)

    def turn_off(self) -> None:
        """LISTEN is down (or not up yet): empty and serve nothing until `turn_on`."""
        if self.is_on:
            self.flush("lost")
        else:
            self._entries.clear()
            self.generation += 1
        self.is_on = False
        self._unread = _nothing_unread
        metrics.PRINCIPAL_CACHE_ON.set(0)


def _nothing_unread() -> bool:
    return False


class _ListeningConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """The LISTEN connection: a notification on CHANNEL empties `cache` while it is parsed."""

    cache: PrincipalCache | None = None

    # asyncpg calls this private method (asyncpg 0.32, `protocol.pyx`) synchronously from the
    # protocol's data_received, but only schedules the listeners; emptying the cache here, before
    # that, leaves no turn of the event loop in which a request could still hit.
    def _process_notification(self, pid: int, channel: str, payload: str) -> None:
        if channel == CHANNEL and self.cache is not None:
            self.cache.flush()
        super()._process_notification(pid, channel, payload)


def unread_check(connection: asyncpg.Connection) -> Callable[[], bool]:
    """Whether `connection`'s socket holds bytes the event loop has not read yet, or is closing."""
    # The transport is private to asyncpg, but its socket is the one the notifications come on.
    transport = connection._transport
    poller = select.poll()
    poller.register(transport.get_extra_info("socket").fileno(), select.POLLIN)

    def unread() -> bool:
        # Closing first: once the transport closes, its descriptor may be closed and reused.
        return bool(transport.is_closing() or poller.poll(0))

    return unread


def listen_url(settings: Settings) -> str:
    """asyncpg's URL of the LISTEN connection: APPS_API_LISTEN_DATABASE_URL (straight to PostgreSQL
    behind PgBouncer's transaction pooling), else APPS_API_DATABASE_URL."""
    url = settings.listen_database_url or settings.database_url
    if url is None:
        raise RuntimeError("database_url is not configured")
    return make_url(to_asyncpg_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class PrincipalListener:
    """The cache's `LISTEN apps_api_principals`: one dedicated asyncpg connection per API process.

    Each notification empties the cache. The cache is on only while the connection listens; a
    lost connection (closed, or a ping unanswered: APPS_API_PRINCIPAL_LISTEN_PING_SECONDS) turns
    it off at once, and it comes back (emptied) once a new connection listens again, after
    0.1 s, then up to 5 s between attempts.
    """

    def __init__(self, cache: PrincipalCache, settings: Settings) -> None:
        self.cache = cache
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Listen in the background (no wait: the API serves, uncached, until LISTEN is up)."""
        if self.cache.enabled:
            self._task = asyncio.create_task(self._run(), name="principal-cache-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.cache.turn_off()

    async def _run(self) -> None:
        delay = _RETRY_FIRST
        while True:
            listened = False
            try:
                connection = await listening_connection(self.cache, self._settings)
                try:
                    self.cache.turn_on(unread_check(connection))
                    listened = True
                    await _until_lost(connection, self._settings.principal_listen_ping_seconds)
                finally:
                    self.cache.turn_off()
                    connection.terminate()
            except Exception as error:  # PostgreSQL away or restarting: uncached meanwhile.
                what = "lost" if listened else "failed"
                logger.warning("principal cache off: LISTEN %s (%s)", what, type(error).__name__)
            delay = _RETRY_FIRST if listened else min(delay * 2, _RETRY_LAST)
            await asyncio.sleep(delay)


async def listening_connection(cache: PrincipalCache, settings: Settings) -> Any:
    """A new connection that LISTENs and empties `cache` on every notification (not turned on)."""
    connection = await asyncpg.connect(
        listen_url(settings),
        timeout=settings.db_connect_timeout,
        statement_cache_size=0,
        server_settings={"application_name": APPLICATION_NAME},
        connection_class=_ListeningConnection,
    )
    connection.cache = cache
    try:
        await asyncio.wait_for(connection.add_listener(CHANNEL, _heard), settings.db_connect_timeout)
    except BaseException:
        connection.terminate()
        raise
    return connection


def _heard(*_: Any) -> None:
    """The channel's listener (LISTEN needs one): `_ListeningConnection` emptied the cache already."""


async def _until_lost(connection: asyncpg.Connection, ping_seconds: float) -> None:
    """Raise once the connection is gone: closed, or a ping unanswered within `ping_seconds`.

    The ping is what notices a connection that died without a word (a half-open TCP connection:
    the server's host gone, a firewall dropping the flow), which would otherwise keep the cache
    on while no notification can arrive.
    """
    lost = asyncio.Event()
    connection.add_termination_listener(lambda *_: lost.set())
    while not lost.is_set() and not connection.is_closed():
        try:
            await asyncio.wait_for(lost.wait(), ping_seconds)
        except TimeoutError:
            await connection.fetchval("SELECT 1", timeout=ping_seconds)
    raise ConnectionError("the connection was closed")
