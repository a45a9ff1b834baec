"""CPU per request of the declared routes and of the baseline's, in process: each ASGI app called
directly, no network. The benchmarked GETs, then the two benchmarked POSTs (an app created in a
fresh organization in turn, a fresh app installed once), with the bodies the write phase sends.

    .venv/bin/python -m bench.route_cpu [--requests 2000] [--profile "POST owned_apps"] [--only NAME]

(`ROUTE_CPU_LINES=N` prints N lines of the profile's cumulative listing, 60 by default.)

On a machine too busy even for CPU time, count instructions instead (valgrind's callgrind counts
the same for the same code whatever else runs): one route, two request counts, and the
difference of the two totals over the difference of the counts is the route's instructions per
request, start-up and seeding cancelled out (see `bench/instructions.sh`).

For comparing changes to the request path (dependencies, sessions, views) on a busy machine:
process CPU time does not count time waiting on PostgreSQL or on other processes, so the figure
moves with the code, not with the load. Uses the bench database (seeded as `python -m bench` does).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import pstats
import time
from typing import Any

import asyncpg

from bench import env, seed


async def _call(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], method: str = "GET", body: bytes = b""
) -> int:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
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
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


Call = tuple[str, list[tuple[bytes, bytes]], str, bytes]  # path, headers, method, body


def _headers(authorization: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", authorization.encode()),
        (b"content-type", b"application/json"),
    ]


async def _creates(connection: asyncpg.Connection, label: str, count: int) -> list[Call]:
    """`count` creates, each organization taking one in turn (at most its cap of apps each)."""
    from apps_api.apps.service import MAX_APPS_PER_ORGANIZATION
    from bench import fixtures
    from bench.phases.writes import APP_BODY

    orgs = await fixtures.create_orgs(connection, label, -(-count // MAX_APPS_PER_ORGANIZATION))
    return [
        (f"/api/v5/orgs/{org.id}/owned_apps", _headers(org.authorization), "POST", APP_BODY.encode())
        for org in itertools.islice(itertools.cycle(orgs), count)
    ]


async def _installs(connection: asyncpg.Connection, label: str, count: int) -> list[Call]:
    """`count` installs, each of a fresh app of one organization."""
    from bench import fixtures

    org = await fixtures.create_org(connection, label)
    app_ids = await fixtures.create_apps(connection, org, count)
    path = f"/api/v5/orgs/{org.id}/app_installations"
    return [
        (path, _headers(org.authorization), "POST", f'{{"app_id": "{app_id}"}}'.encode())
        for app_id in app_ids
    ]


async def _measure(
    database_url: str,
    asyncpg_url: str,
    redis_url: str,
    requests: int,
    profile: str | None,
    only: list[str] | None = None,
    service_only: bool = False,
) -> None:
    from apps_api.main import create_app
    from apps_api.settings import Settings

    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        log_level="WARNING",
        encryption_keys=env.ENCRYPTION_KEY,
    )
    service = create_app(settings)
    os.environ.setdefault("APPS_API_DATABASE_URL", database_url)
    os.environ.setdefault("APPS_API_ENCRYPTION_KEYS", env.ENCRYPTION_KEY)
    from bench import baseline

    org, app_id = seed.org_id(0), seed.app_id(0)
    headers = _headers(f"Token {seed.token_key(0)}")
    paths = {
        "GET owned_apps": f"/api/v5/orgs/{org}/owned_apps",
        "GET public_apps": "/api/v5/public_apps",
        "GET webhook_log_entries": f"/api/v5/orgs/{org}/owned_apps/{app_id}/webhook_log_entries",
        "GET owned_apps/{app_id}": f"/api/v5/orgs/{org}/owned_apps/{app_id}",
        "GET installed_apps": f"/api/v5/orgs/{org}/installed_apps",
        "GET owned_apps/{app_id}/webhooks": f"/api/v5/orgs/{org}/owned_apps/{app_id}/webhooks",
    }
    writes = {"POST owned_apps": _creates, "POST app_installations": _installs}
    warm = 50
    connection = await asyncpg.connect(asyncpg_url)
    print(f"{'route':36} {'service CPU':>16} {'baseline CPU':>16} {'ratio':>6}   (µs per request; wall)")
    try:
        async with (
            service.router.lifespan_context(service),
            baseline.app.router.lifespan_context(baseline.app),
        ):
            for name in [*paths, *writes]:
                if only and name not in only:
                    continue
                cpu = {}
                wall = {}
                apps = (
                    (("service", service),)
                    if service_only
                    else (("service", service), ("baseline", baseline.app))
                )
                for label, app in apps:
                    if name in paths:
                        calls: list[Call] = [(paths[name], headers, "GET", b"")] * (warm + requests)
                    else:
                        calls = await writes[name](connection, f"route-cpu-{label}", warm + requests)
                    for call in calls[:warm]:  # warm caches, pools and compiled statements
                        status = await _call(app, *call)
                        assert 200 <= status < 300, (label, name, status)
                    profiler = cProfile.Profile() if label == "service" and name == profile else None
                    started_cpu, started = time.process_time(), time.perf_counter()
                    if profiler is not None:
                        profiler.enable()
                    for call in calls[warm:]:
                        await _call(app, *call)
                    if profiler is not None:
                        profiler.disable()
                    cpu[label] = (time.process_time() - started_cpu) / requests * 1e6
                    wall[label] = (time.perf_counter() - started) / requests * 1e6
                    if profiler is not None:
                        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
                        pstats.Stats(profiler).sort_stats("cumulative").print_stats(
                            int(os.environ.get("ROUTE_CPU_LINES", "60"))
                        )
                if service_only:
                    print(f"{name:36} {cpu['service']:16.0f}   ({wall['service']:.0f})")
                    continue
                print(
                    f"{name:36} {cpu['service']:16.0f} {cpu['baseline']:16.0f} "
                    f"{cpu['service'] / cpu['baseline']:5.2f}x   ({wall['service']:.0f} vs {wall['baseline']:.0f})"
                )
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--profile", help="a route's name: cProfile its service requests (slower: not its figure)"
    )
    parser.add_argument("--only", action="append", help="measure only this route (repeatable)")
    parser.add_argument("--service-only", action="store_true", help="skip the baseline")
    args = parser.parse_args()
    services = env.start_services()
    try:
        asyncio.run(seed.seed(services.asyncpg_url, force=False))
        asyncio.run(
            _measure(
                services.database_url,
                services.asyncpg_url,
                services.redis_url,
                args.requests,
                args.profile,
                args.only,
                args.service_only,
            )
        )
    finally:
        services.stop()


if __name__ == "__main__":
    main()
