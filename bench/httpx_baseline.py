"""The fan-out baseline: POST pre-signed webhook requests with a bare httpx loop.

Reads a JSON file of `[url, headers, body]` requests and sends them all with one
`httpx.AsyncClient` and `--concurrency` tasks pulling from a shared queue, then prints
`{"sent", "ok", "seconds"}`. No database, no queue, no SSRF guard: the floor of sending.

    python -m bench.httpx_baseline requests.json --concurrency 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx


async def run(requests: list[list[object]], concurrency: int) -> dict[str, float]:
    queue: asyncio.Queue[list[object]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    ok = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=15, trust_env=False) as client:

        async def sender() -> None:
            nonlocal ok
            while True:
                try:
                    url, headers, body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                response = await client.post(str(url), headers=dict(headers), content=str(body).encode())  # type: ignore[call-overload]
                ok += response.is_success

        started, started_cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - started, time.process_time() - started_cpu
    return {"sent": len(requests), "ok": ok, "seconds": elapsed, "cpu_seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    requests = json.loads(Path(args.requests).read_text())
    try:
        import uvloop

        result = uvloop.run(run(requests, args.concurrency))
    except ImportError:
        result = asyncio.run(run(requests, args.concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
