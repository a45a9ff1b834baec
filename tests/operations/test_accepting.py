"""apps_api.accepting: a burst of connections is accepted at once, not one per loop iteration.

Each test runs its own event loop (AcceptingLoop, or uvloop's for the comparison), counts the
loop's iterations with a task that yields once per iteration, and opens real loopback
connections while the loop is blocked, so that they are all pending when it next polls.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import socket
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop

from apps_api import accepting, serving
from apps_api.accepting import AcceptingLoop, AcceptingServer
from apps_api.cli.serve import _uvicorn_config

BURST = 32


class Iterations:
    """The number of loop iterations so far: a task that yields once per iteration counts them."""

    def __init__(self) -> None:
        self.count = 0
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    def stop(self) -> None:
        self._task.cancel()


class Recorder(asyncio.Protocol):
    """Records the iteration of connection_made and answers every byte received with b"ok"."""

    def __init__(self, iterations: Iterations, made: list[int]) -> None:
        self.iterations, self.made = iterations, made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.made.append(self.iterations.count)

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"ok")  # type: ignore[attr-defined]


def run(loop: asyncio.AbstractEventLoop, scenario: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def connect_burst(port: int, count: int = BURST) -> list[socket.socket]:
    """`count` connections opened while the loop is blocked (the kernel completes each handshake)."""
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    time.sleep(0.02)  # not a timed assertion: lets the last handshakes reach the accept queue
    return clients


async def accept_burst(count: int = BURST, backlog: int = 128) -> list[int]:
    """The iterations at which a burst of `count` pending connections was made, in order."""
    iterations, made = Iterations(), []
    sock = listening_socket()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Recorder(iterations, made), sock=sock, backlog=backlog)
    clients = connect_burst(sock.getsockname()[1], count)
    try:
        while len(made) < count and iterations.count < 10_000:
            await asyncio.sleep(0)
        return made
    finally:
        for client in clients:
            client.close()
        server.close()
        await server.wait_closed()
        iterations.stop()


def test_a_burst_of_pending_connections_is_accepted_in_one_iteration() -> None:
    made = run(AcceptingLoop(), accept_burst)

    assert len(made) == BURST
    assert len(set(made)) == 1, f"connections made over iterations {sorted(set(made))}"


def test_a_readiness_event_takes_at_most_backlog_connections() -> None:
    # Linux queues backlog + 1 connections: 5 pending, 4 taken at the first event, 1 at the next.
    made = run(AcceptingLoop(), lambda: accept_burst(count=5, backlog=4))

    assert len(made) == 5
    assert made.count(made[0]) == 4 and len(set(made)) == 2, made


def test_uvloops_own_server_accepts_one_connection_per_iteration() -> None:
    """Why the module exists: libuv accepts one connection per readiness event.

    If this fails, libuv accepts bursts again, and apps_api.accepting may be retired.
    """
    made = run(uvloop.new_event_loop(), accept_burst)

    assert len(made) == BURST
    assert len(set(made)) >= BURST // 2, f"connections made over iterations {sorted(set(made))}"


def test_the_accepting_server_serves_requests_and_closes() -> None:
    async def scenario() -> None:
        iterations, made = Iterations(), []
        sock = listening_socket()
        port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Recorder(iterations, made), sock=sock)
        assert isinstance(server, AcceptingServer)
        assert server.is_serving() and server.sockets == (sock,) and server.get_loop() is loop

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        assert await reader.readexactly(2) == b"ok"

        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        assert not server.is_serving() and server.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        # The connection accepted before the close is still served (uvicorn drains it).
        writer.write(b"y")
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        iterations.stop()

    run(AcceptingLoop(), scenario)


def test_start_serving_false_listens_only_when_asked() -> None:
    async def scenario() -> None:
        iterations, made = Iterations(), []
        sock = listening_socket()
        port = sock.getsockname()[1]
        server = await asyncio.get_running_loop().create_server(
            lambda: Recorder(iterations, made), sock=sock, start_serving=False
        )
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await server.start_serving()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        server.close()
        await server.wait_closed()
        iterations.stop()

    run(AcceptingLoop(), scenario)


class FailingOnce(socket.socket):
    """A listening socket whose next accept() raises `failure` once (a full descriptor table, ...)."""

    failure: OSError | None = None

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        return super().accept()


def failing_once(failure: OSError) -> FailingOnce:
    sock = FailingOnce(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.failure = failure
    return sock


async def served_once(sock: socket.socket) -> list[int]:
    """Serve `sock`, send one request and read its answer; the iterations of connection_made."""
    iterations, made = Iterations(), []
    server = await asyncio.get_running_loop().create_server(lambda: Recorder(iterations, made), sock=sock)
    reader, writer = await asyncio.open_connection(*sock.getsockname())
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
    writer.close()
    server.close()
    await server.wait_closed()
    iterations.stop()
    return made


def test_out_of_descriptors_pauses_accepting_then_resumes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(accepting, "ACCEPT_RETRY_SECONDS", 0.05)
    sock = failing_once(OSError(errno.EMFILE, "injected"))

    with caplog.at_level(logging.ERROR, logger="apps_api.accepting"):
        # Refused by the injected EMFILE, then taken once accepting resumes.
        made = run(AcceptingLoop(), lambda: served_once(sock))
    assert len(made) == 1
    assert [record.getMessage() for record in caplog.records] == [
        "cannot accept connections (injected); accepting again in 0.05 s"
    ]


def test_an_aborted_connection_is_skipped_and_the_next_one_taken() -> None:
    made = run(AcceptingLoop(), lambda: served_once(failing_once(ConnectionAbortedError())))
    assert len(made) == 1


def test_an_unexpected_accept_error_goes_to_the_loop_and_accepting_goes_on() -> None:
    loop, reported = AcceptingLoop(), []
    loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))

    made = run(loop, lambda: served_once(failing_once(OSError(errno.EPERM, "injected"))))
    assert len(made) == 1
    assert [str(error) for error in reported] == ["[Errno 1] injected"]


def test_closed_while_paused_stays_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accepting, "ACCEPT_RETRY_SECONDS", 0.05)

    async def scenario() -> None:
        sock = failing_once(OSError(errno.ENFILE, "injected"))
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, sock=sock)
        client = socket.create_connection(sock.getsockname(), timeout=5)
        while server.is_serving():  # until the injected ENFILE pauses it
            await asyncio.sleep(0.001)
        server.close()
        await asyncio.sleep(0.1)  # past the retry: it must not listen again
        await server.start_serving()
        assert not server.is_serving() and server.sockets == ()
        client.close()

    run(AcceptingLoop(), scenario)


def test_serve_forever_serves_until_closed() -> None:
    async def scenario() -> None:
        iterations, made = Iterations(), []
        sock = listening_socket()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Recorder(iterations, made), sock=sock, start_serving=False)
        forever = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        await server.start_serving()  # already serving: nothing changes
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(b"x")
        assert await reader.readexactly(2) == b"ok"
        assert not forever.done()
        server.close()
        server.close()  # a second close changes nothing
        await asyncio.wait_for(forever, 5)
        writer.close()
        iterations.stop()

    run(AcceptingLoop(), scenario)


def test_a_connection_whose_protocol_fails_is_closed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def failing_factory() -> asyncio.Protocol:
        raise RuntimeError("no protocol")

    async def scenario() -> None:
        sock = listening_socket()
        server = await asyncio.get_running_loop().create_server(failing_factory, sock=sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        # Closed by the server: end of stream (or a reset), never an answer.
        with suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        server.close()
        await server.wait_closed()

    with (
        caplog.at_level(logging.WARNING, logger="apps_api.accepting"),
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always", ResourceWarning)
        run(AcceptingLoop(), scenario)
        gc.collect()
    # Closed by the server, not left to the garbage collector.
    assert not [warning for warning in seen if issubclass(warning.category, ResourceWarning)]
    (record,) = caplog.records
    assert record.getMessage() == "accepted connection dropped before it was served"
    assert record.exc_info is not None and str(record.exc_info[1]) == "no protocol"


def test_tls_and_host_port_servers_stay_uvloops() -> None:
    async def scenario() -> None:
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
        assert not isinstance(server, AcceptingServer)
        server.close()
        await server.wait_closed()

    run(AcceptingLoop(), scenario)


@contextmanager
def served(config: uvicorn.Config) -> Iterator[serving.Server]:
    server = serving.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        thread.join(30)


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_serve_runs_uvicorn_on_the_accepting_loop_and_server() -> None:
    args = argparse.Namespace(host="127.0.0.1", port=0, workers=1)
    config = _uvicorn_config(args)
    assert config.loop == serving.LOOP_FACTORY
    config.app, config.factory, config.log_level = hello, False, "warning"

    with served(config) as server:
        assert len(server.servers) == 1 and isinstance(server.servers[0], AcceptingServer)
        (sock,) = server.servers[0].sockets
        response = httpx.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
        assert response.text == "hello"
