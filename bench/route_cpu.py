"""CPU per request of the declared routes and of the baseline's, in process: each ASGI app called
directly, no network.

    .venv/bin/python -m bench.route_cpu [--requests 2000]

For comparing changes to the request path (dependencies, sessions, views) on a busy machine:
process CPU time does not count time waiting on PostgreSQL or on other processes, so the figure
moves with the code, not with the load. Uses the bench database (seeded as `python -m bench` does).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import env, seed


async def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure(database_url: str, redis_url: str, requests: int) -> None:
    import os

    from apps_api.main import create_app
    from apps_api.settings import Settings

    settings = Settings(database_url=database_url, redis_url=redis_url, log_level="WARNING")
    service = create_app(settings)
    os.environ.setdefault("APPS_API_DATABASE_URL", database_url)
    from bench import baseline

    org, app_id = seed.org_id(0), seed.app_id(0)
    headers = [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Token {seed.token_key(0)}".encode())]
    paths = {
        "GET owned_apps": f"/api/v5/orgs/{org}/owned_apps",
        "GET public_apps": "/api/v5/public_apps",
        "GET webhook_log_entries": f"/api/v5/orgs/{org}/owned_apps/{app_id}/webhook_log_entries",
        "GET owned_apps/{app_id}": f"/api/v5/orgs/{org}/owned_apps/{app_id}",
        "GET installed_apps": f"/api/v5/orgs/{org}/installed_apps",
        "GET owned_apps/{app_id}/webhooks": f"/api/v5/orgs/{org}/owned_apps/{app_id}/webhooks",
    }
    print(f"{'route':36} {'service CPU':>16} {'baseline CPU':>16} {'ratio':>6}   (µs per request; wall)")
    async with service.router.lifespan_context(service), baseline.app.router.lifespan_context(baseline.app):
        for name, path in paths.items():
            cpu = {}
            wall = {}
            for label, app in (("service", service), ("baseline", baseline.app)):
                for _ in range(50):  # warm caches, pools and compiled statements
                    assert await _call(app, path, headers) == 200, (label, name)
                started_cpu, started = time.process_time(), time.perf_counter()
                for _ in range(requests):
                    await _call(app, path, headers)
                cpu[label] = (time.process_time() - started_cpu) / requests * 1e6
                wall[label] = (time.perf_counter() - started) / requests * 1e6
            print(
                f"{name:36} {cpu['service']:16.0f} {cpu['baseline']:16.0f} "
                f"{cpu['service'] / cpu['baseline']:5.2f}x   ({wall['service']:.0f} vs {wall['baseline']:.0f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    services = env.start_services()
    try:
        asyncio.run(seed.seed(services.asyncpg_url, force=False))
        asyncio.run(_measure(services.database_url, services.redis_url, args.requests))
    finally:
        services.stop()


if __name__ == "__main__":
    main()
