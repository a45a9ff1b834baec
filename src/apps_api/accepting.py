"""Every pending connection accepted at each readiness of the listening socket, on uvloop.

libuv, under uvloop, accepts one connection per event-loop iteration (`uv__server_io`). A busy
API process runs iterations of several milliseconds, so a burst of N new connections waits up
to N iterations for its last accept: 32 connections opened at once against a process serving
32 others waited up to 250 ms before their first request was read (bench/ANALYSIS.md, "Eleventh
round"). asyncio's own server accepts up to `backlog` connections per readiness event; this
server does the same and hands each socket to uvloop's native transport
(`loop.connect_accepted_socket`), so requests cost what they cost on uvloop's own server.

`serve` runs uvicorn on `new_event_loop()`; `serving.Server` binds the socket itself, so that
uvicorn creates its server from a socket (`create_server(sock=...)`), which this loop serves.
TLS and servers created from a host and port stay uvloop's.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

logger = logging.getLogger(__name__)

# As asyncio's server: out of descriptors or memory, stop accepting for a second, then retry.
ACCEPT_RETRY_SECONDS = 1.0
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class AcceptingServer(asyncio.AbstractServer):
    """A listening stream socket; each readiness event accepts up to `backlog` connections."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: ProtocolFactory,
        sock: socket.socket,
        backlog: int,
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._backlog = max(1, backlog)
        self._serving = False
        self._closed = loop.create_future()
        # The loop holds tasks weakly: a connection's task must not be collected before it runs.
        self._connecting: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed.done() else (self._sock,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._listen()

    async def serve_forever(self) -> None:
        self._listen()
        await asyncio.shield(self._closed)

    def close(self) -> None:
        if self._closed.done():
            return
        self._stop_accepting()
        self._sock.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        # As uvicorn uses it: after close(); connections are drained by the server around it.
        await asyncio.shield(self._closed)

    def _listen(self) -> None:
        if self._serving or self._closed.done():
            return
        self._sock.listen(self._backlog)
        self._resume()

    def _resume(self) -> None:
        if self._closed.done():
            return
        self._loop.add_reader(self._sock.fileno(), self._accept_pending)
        self._serving = True

    def _stop_accepting(self) -> None:
        if self._serving:
            self._loop.remove_reader(self._sock.fileno())
            self._serving = False

    def _accept_pending(self) -> None:
        for _ in range(self._backlog):
            try:
                connection, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up before we took it: nothing to serve
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                logger.error(
                    "cannot accept connections (%s); accepting again in %g s",
                    exc.strerror,
                    ACCEPT_RETRY_SECONDS,
                )
                self._stop_accepting()
                self._loop.call_later(ACCEPT_RETRY_SECONDS, self._resume)
                return
            self._connect(connection)

    def _connect(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._protocol_factory, connection))
        self._connecting.add(task)
        task.add_done_callback(lambda done: self._connected(done, connection))

    def _connected(self, task: asyncio.Task[Any], connection: socket.socket) -> None:
        self._connecting.discard(task)
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            logger.warning("accepted connection dropped before it was served", exc_info=error)
            connection.close()


class AcceptingLoop(uvloop.Loop):
    """uvloop, serving stream sockets handed to `create_server` with an `AcceptingServer`."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: ProtocolFactory,
        host: Any = None,
        port: Any = None,
        *,
        sock: socket.socket | None = None,
        ssl: Any = None,
        backlog: int = 100,
        start_serving: bool = True,
        **options: Any,
    ) -> asyncio.AbstractServer:
        if sock is None or ssl is not None or options or sock.type != socket.SOCK_STREAM:
            server: asyncio.AbstractServer = await super().create_server(
                protocol_factory,
                host,
                port,
                sock=sock,
                ssl=ssl,
                backlog=backlog,
                start_serving=start_serving,
                **options,
            )
            return server
        accepting = AcceptingServer(self, protocol_factory, sock, backlog)
        if start_serving:
            await accepting.start_serving()
        return accepting


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop of `serve` (uvicorn's `loop` setting names this function)."""
    return AcceptingLoop()
