"""The webhook receiver: a raw asyncio HTTP/1.1 server (keep-alive) in a process of its own.

`POST /hook...` answers `200 ok` and records when the request was read in full (wall clock,
`time.time()`), its `webhook-id` (to count duplicates) and, when tracking is on, the body's
`resource_id`. `GET /stats` reports counts, the first and last read; `GET /stats?detail=1`
adds `{resource_id: read time}`; `POST /reset?track=1` clears everything (and turns tracking on).

    python -m bench.receiver --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class State:
    def __init__(self) -> None:
        self.reset(False)

    def reset(self, track: bool) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.ids: set[str] = set()
        self.duplicates = 0
        self.track = track
        self.reads: dict[str, float] = {}

    def stats(self, detail: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "distinct": len(self.ids),
            "duplicates": self.duplicates,
        }
        if detail:
            result["reads"] = self.reads
        return result


STATE = State()


def _response(status: str, payload: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\n".encode()
        + b"content-type: "
        + content_type
        + f"\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )


class HttpProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            message_id = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "webhook-id":
                    message_id = value.strip()
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            method, target, _ = lines[0].split(" ", 2)
            self.transport.write(self.handle(method, target, message_id, body))

    def handle(self, method: str, target: str, message_id: str, body: bytes) -> bytes:
        if target.startswith("/hook"):
            now = time.time()
            STATE.count += 1
            if not STATE.first:
                STATE.first = now
            STATE.last = now
            if message_id in STATE.ids:
                STATE.duplicates += 1
            else:
                STATE.ids.add(message_id)
            if STATE.track:
                STATE.reads[str(json.loads(body).get("resource_id"))] = now
            return OK
        if target.startswith("/stats"):
            return _response("200 OK", json.dumps(STATE.stats("detail=1" in target)).encode())
        if target.startswith("/reset") and method == "POST":
            STATE.reset("track=1" in target)
            return _response("200 OK", b"{}")
        return _response("404 Not Found", b"{}")


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
