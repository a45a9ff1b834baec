"""The guarded client's connection pool against a real loopback server that closes idle connections.

httpcore asks each idle pooled connection whether the server closed it before reusing it
(`get_extra_info("is_readable")`); the guarded backend answers from the socket it looked up
once (`outbound.client.KnownSocketStream`). A closed connection must never carry the next
request, and a live one must be reused.
"""

from __future__ import annotations

import asyncio

import pytest

from apps_api.outbound.client import guarded_client, send
from apps_api.outbound.guard import parse_networks

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


async def _server(*, close_after_response: bool) -> tuple[asyncio.Server, list[int]]:
    """Answers every request with 200 keep-alive; optionally closes the connection right after."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(RESPONSE)
                await writer.drain()
                if close_after_response:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


@pytest.mark.parametrize(
    ("close_after_response", "connections_opened"),
    [
        pytest.param(True, 3, id="an idle connection the server closed is not reused"),
        pytest.param(False, 1, id="a live idle connection is reused"),
    ],
)
async def test_idle_connections(close_after_response: bool, connections_opened: int) -> None:
    server, connections = await _server(close_after_response=close_after_response)
    port = server.sockets[0].getsockname()[1]
    async with server, guarded_client(parse_networks("127.0.0.0/8")) as client:
        for _ in range(3):
            outcome = await send(
                client, method="POST", url=f"http://127.0.0.1:{port}/hook", headers={}, content=b"{}"
            )
            assert (outcome.status_code, outcome.error) == (200, None)
            await asyncio.sleep(0.05)  # a closing server's FIN arrives: its idle connection turns readable
    assert len(connections) == connections_opened
