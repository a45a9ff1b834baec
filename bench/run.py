"""The benchmark run: every measurement next to its baseline, in one run, on this machine.

    .venv/bin/python -m bench [--seconds 5] [--rounds 3] [--soak 60] [--only reads,deep,...] [--profile]
        [--scale 10]

Phases (each interleaves service and baseline rounds and quotes medians and their ratio):
reads, deep, overload, writes, fanout, latency, matching, soak (memory), scale. See docs/benchmarks.md,
Benchmarks. `overload` drives owned_apps at 4x and 16x the reads' connections (load shedding);
`scale` seeds `--scale N` times the data set into a second database and compares a second API
on it with the 1x one.
`--only` runs some phases: RESULTS.md then has only their rows and names the phases that did not
run. `--profile` attaches py-spy to the API during the reads phase (bench/profiles/).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from arq import create_pool
from arq.connections import RedisSettings

from bench import env, fixtures, load, scaling, seed
from bench.load import Run

RESULTS = Path(__file__).with_name("RESULTS.md")
ANALYSIS = Path(__file__).with_name("ANALYSIS.md")
PROFILES = Path(__file__).with_name("profiles")
PHASES = ("reads", "deep", "overload", "writes", "fanout", "latency", "matching", "soak", "scale")
# Phases that need the worker (and the webhook receiver); a run without them starts neither.
WORKER_PHASES = ("fanout", "latency", "soak")


@dataclass
class Row:
    """One line of the results table."""

    measurement: str
    service: str
    baseline: str
    ratio: str
    target: str
    ok: bool | None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        mark = "-" if row.ok is None else ("PASS" if row.ok else "MISS")
        print(
            f"  {row.measurement:<56} {row.service:>22} {row.baseline:>22} {row.ratio:>8} {row.target:>22} {mark}",
            flush=True,
        )
        if row.note:
            print(f"    {row.note}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fetch(url: str, authorization: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


# --- reads ----------------------------------------------------------------------------------


def read_paths() -> dict[str, str]:
    """The three hot lists (also the soak's read traffic and, for the log, the deep-page route)."""
    org, app = seed.org_id(0), seed.app_id(0)
    return {
        "GET owned_apps": f"/api/v5/orgs/{org}/owned_apps",
        "GET public_apps": "/api/v5/public_apps",
        "GET webhook_log_entries": f"/api/v5/orgs/{org}/owned_apps/{app}/webhook_log_entries",
    }


def other_read_paths() -> dict[str, str]:
    """Reads measured for throughput only: one owned app, the installed apps, an app's webhooks."""
    org, app = seed.org_id(0), seed.app_id(0)
    return {
        "GET owned_apps/{app_id}": f"/api/v5/orgs/{org}/owned_apps/{app}",
        "GET installed_apps": f"/api/v5/orgs/{org}/installed_apps",
        "GET owned_apps/{app_id}/webhooks": f"/api/v5/orgs/{org}/owned_apps/{app}/webhooks",
    }


# Targets of the reads phase (issue 14): each a ratio to the baseline in the same run.
HOT_THROUGHPUT = 0.6  # the three hot lists: service req/s >= 0.6x the baseline's
HOT_P99 = 1.5  # ... and p99 <= 1.5x the baseline's p99, both at 32 connections
OTHER_THROUGHPUT = 0.5  # every other benchmarked read: >= 0.5x


def measure_reads(
    urls: dict[str, str],
    paths: dict[str, str],
    authorization: str,
    seconds: float,
    rounds: int,
    connections: int = 32,
) -> dict[str, dict[str, list[Run]]]:
    """wrk runs of each path on each server (`urls`: who -> base URL), warmed, rounds interleaved."""
    for path in paths.values():
        for url in urls.values():
            load.wrk(url, path, authorization=authorization, seconds=2, connections=connections)
    who = list(urls)
    results: dict[str, dict[str, list[Run]]] = {name: {key: [] for key in who} for name in paths}
    for index in range(rounds):
        for name, path in paths.items():
            for key in who if index % 2 == 0 else who[::-1]:
                run = load.wrk(
                    urls[key], path, authorization=authorization, seconds=seconds, connections=connections
                )
                results[name][key].append(run)
    return results


def phase_reads(report: Report, api: str, base: str, seconds: float, rounds: int) -> None:
    authorization = f"Token {seed.token_key(0)}"
    hot = read_paths()
    paths = {**hot, **other_read_paths()}
    for name, path in paths.items():
        # urlopen raises on a 4xx/5xx: two identical error bodies never pass as "identical".
        same = fetch(api + path, authorization) == fetch(base + path, authorization)
        report.details.append(
            f"- {name}: service and baseline bodies identical: **{'yes' if same else 'NO'}**"
        )
    measured = measure_reads({"service": api, "baseline": base}, paths, authorization, seconds, rounds)
    results = {name: (runs["service"], runs["baseline"]) for name, runs in measured.items()}
    for name, (service_runs, baseline_runs) in results.items():
        service_rps = median([run.rps for run in service_runs])
        baseline_rps = median([run.rps for run in baseline_runs])
        service_p99 = median([run.p99_ms for run in service_runs])
        baseline_p99 = median([run.p99_ms for run in baseline_runs])
        ratio = service_rps / baseline_rps if baseline_rps else 0.0
        p99_ratio = service_p99 / baseline_p99 if baseline_p99 else float("inf")
        failures = sum(run.non2xx + run.errors for run in service_runs + baseline_runs)
        failed = f"{failures} non-2xx/errors; " if failures else ""
        p50 = (
            f"p50 {median([r.p50_ms for r in service_runs]):.1f} ms vs "
            f"{median([r.p50_ms for r in baseline_runs]):.1f} ms"
        )
        if name not in hot:
            report.add(
                Row(
                    f"{name}: throughput (32 conn.)",
                    f"{service_rps:,.0f} req/s",
                    f"{baseline_rps:,.0f} req/s",
                    f"{ratio:.2f}x",
                    f">= {OTHER_THROUGHPUT}x",
                    ratio >= OTHER_THROUGHPUT and not failures,
                    failed + f"p99 {service_p99:.1f} vs {baseline_p99:.1f} ms; {p50}",
                )
            )
            continue
        report.add(
            Row(
                f"{name}: throughput (32 conn.)",
                f"{service_rps:,.0f} req/s",
                f"{baseline_rps:,.0f} req/s",
                f"{ratio:.2f}x",
                f">= {HOT_THROUGHPUT}x",
                ratio >= HOT_THROUGHPUT and not failures,
                failed.removesuffix("; "),
            )
        )
        report.add(
            Row(
                f"{name}: p99 latency (32 conn.)",
                f"{service_p99:.1f} ms",
                f"{baseline_p99:.1f} ms",
                f"{p99_ratio:.2f}x",
                f"<= {HOT_P99}x the baseline's",
                p99_ratio <= HOT_P99,
                p50,
            )
        )


@contextmanager
def profiled(pid: int, label: str, output_format: str | None) -> Iterator[Path | None]:
    """`py-spy record` attached to process `pid` for the duration of the block (no-op without a format).

    --nonblocking: py-spy reads the stacks without pausing the process, so the profiled phase
    is slowed by py-spy's own CPU (it shares the cores), not by stopping the server.
    """
    if output_format is None:
        yield None
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install -e '.[bench]'")
    PROFILES.mkdir(exist_ok=True)
    suffix = "svg" if output_format == "flamegraph" else "speedscope.json"
    path = PROFILES / f"{label}-{datetime.now(UTC):%Y%m%d-%H%M%S}.{suffix}"
    process = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--format", output_format, "--output", str(path)),
            *("--rate", "100", "--nonblocking"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield path
    finally:
        # py-spy writes its file when interrupted, as on Ctrl-C.
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode != 0 or not path.exists():
            log(f"py-spy failed ({process.returncode}): {output.strip()[-2000:]}")
        else:
            log(f"profile of the API during {label}: {path.relative_to(env.ROOT)}")


# --- deep pages -----------------------------------------------------------------------------


def page_400(api: str, path: str, authorization: str) -> str:
    """Follow `next` links from page 1 to page 400; returns page 400's path and query."""
    url = api + path
    with httpx.Client(headers={"Authorization": authorization}, timeout=10) as client:
        for _ in range(399):
            body = client.get(url).json()
            url = api + body["next"].removeprefix(env.PUBLIC_BASE_URL)
        last = client.get(url).json()
    assert len(last["results"]) == 25 and last["next"] is None, "page 400 must be the last full page"
    return url.removeprefix(api)


def measure_deep(
    urls: dict[str, str], pages: dict[str, dict[str, str]], seconds: float, rounds: int
) -> dict[tuple[str, str], list[Run]]:
    """1-connection wrk runs of each server's pages (who -> page -> path), rounds interleaved."""
    authorization = f"Token {seed.token_key(0)}"
    runs: dict[tuple[str, str], list[Run]] = {}
    for index in range(rounds):
        for who, url in urls.items():
            order = list(pages[who].items())
            for page, path in order if index % 2 == 0 else order[::-1]:
                run = load.wrk(url, path, authorization=authorization, seconds=seconds, connections=1)
                runs.setdefault((who, page), []).append(run)
    return runs


def phase_deep(report: Report, api: str, base: str, seconds: float, rounds: int) -> None:
    authorization = f"Token {seed.token_key(0)}"
    first = read_paths()["GET webhook_log_entries"]
    deep = page_400(api, first, authorization)
    same = fetch(api + deep, authorization) == fetch(base + deep, authorization)
    report.details.append(
        f"- page 400 of webhook_log_entries: bodies identical: **{'yes' if same else 'NO'}**"
    )
    pages = {"1": first, "400": deep}
    runs = measure_deep(
        {"service": api, "baseline": base}, {"service": pages, "baseline": pages}, seconds, rounds
    )

    def cost(who: str, page: str) -> float:
        return median([run.p50_ms for run in runs[(who, page)]])

    service_ratio = cost("service", "400") / cost("service", "1")
    baseline_ratio = cost("baseline", "400") / cost("baseline", "1")
    report.add(
        Row(
            "Deep page: page 400 / page 1 (10,000 rows)",
            f"{cost('service', '400'):.2f} / {cost('service', '1'):.2f} ms",
            f"{cost('baseline', '400'):.2f} / {cost('baseline', '1'):.2f} ms",
            f"{service_ratio:.2f}x",
            "<= 1.2x",
            service_ratio <= 1.2,
            f"median latency, 1 connection; baseline's own ratio {baseline_ratio:.2f}x",
        )
    )


# --- overload ----------------------------------------------------------------------------------

READS_CONNECTIONS = 32  # the reads phase's wrk connections
OVERLOAD_FACTORS = (4, 16)


def phase_overload(report: Report, api: str, seconds: float, rounds: int) -> None:
    """GET owned_apps at 4x and 16x the reads phase's connections: what the admitted requests see.

    Past APPS_API_MAX_REQUESTS_IN_FLIGHT the service answers 503 at once (shedding); the rows
    give the p99 of the 2xx responses alone (bench/load.py, STATUS_LUA: per-request latency from
    a send time the service echoes back), the share shed, and any 500 or socket error.
    """
    authorization = f"Token {seed.token_key(0)}"
    path = read_paths()["GET owned_apps"]
    reference = [
        load.wrk_by_status(
            api, path, authorization=authorization, seconds=seconds, connections=READS_CONNECTIONS
        )
        for _ in range(rounds)
    ]
    reference_p99 = median([run.admitted_p99_ms for run in reference])
    for factor in OVERLOAD_FACTORS:
        connections = READS_CONNECTIONS * factor
        runs = [
            load.wrk_by_status(
                api, path, authorization=authorization, seconds=seconds, connections=connections
            )
            for _ in range(rounds)
        ]
        # A run in which no request was admitted has no p99 (wrk's script says -1): left out.
        answered = [run.admitted_p99_ms for run in runs if run.admitted_p99_ms >= 0]
        p99 = median(answered) if answered else None
        report.add(
            Row(
                f"Overload: GET owned_apps at {connections} conn. ({factor}x), admitted p99",
                "none admitted" if p99 is None else f"{p99:.1f} ms",
                f"{reference_p99:.1f} ms ({READS_CONNECTIONS} conn.)",
                "-" if p99 is None or not reference_p99 else f"{p99 / reference_p99:.2f}x",
                "no 500",
                sum(run.statuses.get(500, 0) for run in runs) == 0,
                _overload_note(runs),
            )
        )


def _pooled(counts: list[dict[Any, int]]) -> dict[Any, int]:
    total: dict[Any, int] = {}
    for one in counts:
        for key, count in one.items():
            total[key] = total.get(key, 0) + count
    return total


def _overload_note(runs: list[load.StatusRun]) -> str:
    total = sum(run.requests for run in runs)
    statuses = _pooled([run.statuses for run in runs])
    socket = _pooled([run.socket_errors for run in runs])
    shed = statuses.get(503, 0) / total if total else 0.0
    listed = ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items()))
    errors = ", ".join(f"{kind} {count}" for kind, count in socket.items())
    return (
        f"{shed:.1%} shed (503); {_admitted(runs)}; statuses {listed}; socket errors {errors} "
        "(shedding closes no connection: expected 0); "
        f"{sum(r.unstamped for r in runs)} 2xx without the echoed send time; "
        f"{len(runs)} runs, latencies of all their 2xx pooled per run, median of the runs' p99"
    )


def _admitted(runs: list[load.StatusRun]) -> str:
    rate = sum(run.count(200, 300) for run in runs) / sum(run.seconds for run in runs)
    p50s = [run.admitted_p50_ms for run in runs if run.admitted_p50_ms >= 0]
    p50 = f"{median(p50s):.1f} ms" if p50s else "none admitted"
    empty = sum(1 for run in runs if run.requests == 0)
    return f"{rate:,.0f} admitted req/s (p50 {p50}); {empty} of {len(runs)} runs got no answer at all"


# --- writes ---------------------------------------------------------------------------------

APP_BODY = json.dumps(
    {
        "name": "Bench written app",
        "description": "Created by the write benchmark.",
        "is_app_user_required": False,
        "terms_of_service_url": "https://apps.example.com/terms",
        "privacy_policy_url": "https://apps.example.com/privacy",
    }
)


async def measure_writes(
    targets: dict[str, tuple[str, str]],
    seconds: float,
    rounds: int,
    kinds: tuple[str, ...] = ("create", "install"),
) -> dict[tuple[str, str], list[Run]]:
    """wrk runs of the writes (`kinds`) on each server (who -> (database URL, base URL)), interleaved.

    Each server writes into an organization of its own, in its own database.
    """
    connections = {who: await asyncpg.connect(database_url) for who, (database_url, _) in targets.items()}
    try:
        orgs = {who: await fixtures.create_org(connections[who], f"writes-{who}") for who in targets}
        results: dict[tuple[str, str], list[Run]] = {}
        who = list(targets)
        for index in range(rounds + 1):  # round 0 warms up
            for key in who if index % 2 == 0 else who[::-1]:
                for kind in kinds:
                    run = await _write_run(
                        kind, connections[key], orgs[key], targets[key][1], seconds if index else 1, index
                    )
                    if index:
                        results.setdefault((kind, key), []).append(run)
        return results
    finally:
        for connection in connections.values():
            await connection.close()


async def _write_run(
    kind: str, connection: asyncpg.Connection, org: fixtures.RunOrg, url: str, seconds: float, index: int
) -> Run:
    if kind == "create":
        return load.wrk(
            url,
            f"/api/v5/orgs/{org.id}/owned_apps",
            authorization=org.authorization,
            seconds=seconds,
            method="POST",
            bodies=[APP_BODY],
        )
    # Fresh, never-installed apps for every install run (one install each).
    app_ids = await fixtures.create_apps(connection, org, 12_000 if index else 2_000)
    return load.wrk(
        url,
        f"/api/v5/orgs/{org.id}/app_installations",
        authorization=org.authorization,
        seconds=seconds,
        method="POST",
        bodies=[json.dumps({"app_id": str(app_id)}) for app_id in app_ids],
    )


async def phase_writes(
    report: Report, database_url: str, api: str, base: str, seconds: float, rounds: int
) -> None:
    results = await measure_writes(
        {"service": (database_url, api), "baseline": (database_url, base)}, seconds, rounds
    )
    for kind, label in (
        ("create", "POST owned_apps (create app)"),
        ("install", "POST app_installations"),
    ):
        service, baseline = results[(kind, "service")], results[(kind, "baseline")]
        service_rps, baseline_rps = median([r.rps for r in service]), median([r.rps for r in baseline])
        ratio = service_rps / baseline_rps if baseline_rps else 0.0
        failures = sum(run.non2xx + run.errors for run in service + baseline)
        report.add(
            Row(
                f"{label}: throughput (32 conn.)",
                f"{service_rps:,.0f} req/s",
                f"{baseline_rps:,.0f} req/s",
                f"{ratio:.2f}x",
                ">= 0.5x",
                ratio >= 0.5,
                (f"{failures} non-2xx/errors; " if failures else "")
                + f"p99 {median([r.p99_ms for r in service]):.0f} vs {median([r.p99_ms for r in baseline]):.0f} ms",
            )
        )


# --- fan-out and latency ----------------------------------------------------------------------


async def receiver_stats(receiver: str, detail: bool = False) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{receiver}/stats" + ("?detail=1" if detail else ""))
        return dict(response.json())


async def receiver_reset(receiver: str, track: bool = False) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{receiver}/reset" + ("?track=1" if track else ""))


async def signed_requests(connection: asyncpg.Connection, org: fixtures.RunOrg) -> list[list[Any]]:
    """The service's deliveries of this organization as pre-signed requests (same ids, bodies, keys)."""
    from apps_api.delivery.signing import signature_headers

    rows = await connection.fetch(
        "SELECT d.endpoint_url, d.message_id, d.payload::text AS payload, a.secret FROM outbound_deliveries d "
        "JOIN apps a ON a.id = d.app_id WHERE d.organization_id = $1",
        org.id,
    )
    requests = []
    for row in rows:
        body = json.dumps(json.loads(row["payload"]), separators=(",", ":")).encode()
        headers = signature_headers(
            secret=row["secret"], message_id=row["message_id"], timestamp=int(time.time()), body=body
        )
        headers.update({"content-type": "application/json", "user-agent": "apps-api-webhooks/1"})
        requests.append([row["endpoint_url"], headers, body.decode()])
    return requests


async def phase_fanout(
    report: Report,
    services: env.Services,
    receiver: str,
    *,
    rounds: int,
    events: int,
    webhooks: int,
    concurrency: int,
    worker: env.Process,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from apps_api.settings import to_asyncpg_url

    connection = await asyncpg.connect(services.asyncpg_url)
    engine = create_async_engine(to_asyncpg_url(services.database_url), pool_size=2)
    pool = await create_pool(RedisSettings.from_dsn(services.redis_url), default_queue_name=env.QUEUE)
    try:
        org = await fixtures.create_org(connection, "fanout")
        await fixtures.create_webhooked_apps(connection, org, webhooks, f"{receiver}/hook")
        expected = events * webhooks
        service_rates, baseline_rates, service_totals, failures, duplicates = [], [], [], 0, 0
        service_cpu, baseline_cpu = [], []
        for index in range(rounds + 1):  # round 0 warms the worker up (matcher cache, connections)
            await connection.execute("DELETE FROM outbound_deliveries WHERE organization_id = $1", org.id)
            await receiver_reset(receiver)
            count = expected if index else webhooks
            resource_ids = [f"fanout-{index}-{n}" for n in range(count // webhooks)]
            cpu_before = worker.cpu_seconds()
            committed = await fixtures.publish(
                engine, pool, org, resource_ids, {"status": "open", "topic": "bench"}
            )

            async def delivered(target: int = count) -> bool:
                return int((await receiver_stats(receiver))["count"]) >= target

            if not await fixtures.wait_for(delivered, timeout=300):
                raise RuntimeError(f"fan-out round {index}: deliveries did not all arrive")
            stats = await receiver_stats(receiver)

            async def finished() -> bool:
                return not await connection.fetchval(
                    "SELECT count(*) FROM outbound_deliveries WHERE organization_id = $1 AND status <> 'successful'",
                    org.id,
                )

            await fixtures.wait_for(finished, timeout=60)
            if not index:
                continue
            service_cpu.append((worker.cpu_seconds() - cpu_before) * 1000 / count)
            duplicates += int(stats["duplicates"])
            failures += int(
                await connection.fetchval(
                    "SELECT count(*) FROM outbound_deliveries WHERE organization_id = $1 AND status <> 'successful'",
                    org.id,
                )
            )
            service_rates.append(stats["count"] / (stats["last"] - stats["first"]))
            service_totals.append(stats["count"] / (stats["last"] - committed))
            # The baseline: the very same signed payloads, a bare httpx loop, same concurrency.
            requests = await signed_requests(connection, org)
            await receiver_reset(receiver)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(requests, handle)
            output = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.httpx_baseline",
                    handle.name,
                    "--concurrency",
                    str(concurrency),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=env.ROOT,
                env=services.env(),
            )
            os.unlink(handle.name)
            baseline_cpu.append(json.loads(output.stdout)["cpu_seconds"] * 1000 / len(requests))
            stats = await receiver_stats(receiver)
            baseline_rates.append(stats["count"] / (stats["last"] - stats["first"]))
        service, baseline = median(service_rates), median(baseline_rates)
        ratio = service / baseline if baseline else 0.0
        note = (
            f"{expected:,} deliveries a round ({events} events x {webhooks} webhooks, one receiver, "
            f"{concurrency} per endpoint); commit-to-last-read {median(service_totals):,.0f}/s; "
            f"CPU per delivery: worker {median(service_cpu):.2f} ms, bare httpx process "
            f"{median(baseline_cpu):.2f} ms; "
            f"{failures} not successful, {duplicates} duplicate webhook-ids"
        )
        report.add(
            Row(
                "Webhook fan-out: deliveries/s sustained",
                f"{service:,.0f} /s",
                f"{baseline:,.0f} /s",
                f"{ratio:.2f}x",
                ">= 1,000/s",
                service >= 1000,
                note,
            )
        )
        report.add(
            Row(
                "Webhook fan-out: ratio to bare httpx",
                f"{service:,.0f} /s",
                f"{baseline:,.0f} /s",
                f"{ratio:.2f}x",
                ">= 0.6x",
                ratio >= 0.6,
            )
        )
    finally:
        await pool.aclose()
        await engine.dispose()
        await connection.close()


async def phase_latency(
    report: Report, services: env.Services, receiver: str, *, seconds: float, rate: int, worker: env.Process
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from apps_api.delivery.signing import signature_headers
    from apps_api.settings import to_asyncpg_url

    connection = await asyncpg.connect(services.asyncpg_url)
    engine = create_async_engine(to_asyncpg_url(services.database_url), pool_size=4)
    pool = await create_pool(RedisSettings.from_dsn(services.redis_url), default_queue_name=env.QUEUE)
    try:
        org = await fixtures.create_org(connection, "latency")
        await fixtures.create_webhooked_apps(connection, org, 1, f"{receiver}/hook")
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        # Warm-up, then the measured stream: one event per transaction at `rate` per second.
        total = int(seconds * rate)
        await receiver_reset(receiver, track=True)
        await fixtures.publish(engine, pool, org, ["latency-warmup"], {"status": "open"})
        commits: dict[str, float] = {}
        direct: dict[str, float] = {}
        cpu_before = worker.cpu_seconds()
        started = time.monotonic()
        async with httpx.AsyncClient() as client:
            for number in range(total):
                due = started + number / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                resource_id = f"latency-{number}"
                commits[resource_id] = await fixtures.publish(
                    engine, pool, org, [resource_id], {"status": "open"}
                )
                if number % 4 == 0:
                    # The floor: the publisher itself POSTs a signed payload right after a commit.
                    floor_id = f"direct-{number}"
                    async with engine.begin() as tx:
                        await tx.exec_driver_sql("SELECT 1")
                    direct[floor_id] = time.time()
                    body = json.dumps({"resource_id": floor_id}).encode()
                    headers = signature_headers(
                        secret=secret, message_id=floor_id, timestamp=int(time.time()), body=body
                    )
                    await client.post(f"{receiver}/hook", content=body, headers=headers)

        async def arrived() -> bool:
            return int((await receiver_stats(receiver))["count"]) >= total + len(direct) + 1

        await fixtures.wait_for(arrived, timeout=120)
        worker_cpu_ms = (worker.cpu_seconds() - cpu_before) * 1000 / max(total, 1)
        reads = (await receiver_stats(receiver, detail=True))["reads"]
        latencies = sorted((reads[key] - value) * 1000 for key, value in commits.items() if key in reads)
        floors = sorted((reads[key] - value) * 1000 for key, value in direct.items() if key in reads)
        missing = total - len(latencies)

        def pct(values: list[float], q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

        report.add(
            Row(
                f"End-to-end latency at {rate} events/s: p50",
                f"{pct(latencies, 0.5):.1f} ms",
                f"{pct(floors, 0.5):.1f} ms",
                "-",
                "<= 30 ms",
                pct(latencies, 0.5) <= 30,
                f"{total} events, {missing} missing; baseline = direct POST after a commit; "
                f"worker CPU {worker_cpu_ms:.2f} ms per event",
            )
        )
        report.add(
            Row(
                f"End-to-end latency at {rate} events/s: p99",
                f"{pct(latencies, 0.99):.1f} ms",
                f"{pct(floors, 0.99):.1f} ms",
                "-",
                "<= 200 ms",
                pct(latencies, 0.99) <= 200,
                f"max {latencies[-1] if latencies else float('nan'):.0f} ms",
            )
        )
    finally:
        await pool.aclose()
        await engine.dispose()
        await connection.close()


# --- matching ----------------------------------------------------------------------------------


def phase_matching(report: Report) -> None:
    from bench import matching

    figures = {total: matching.measure(total, 10_000) for total in (1_000, 10_000, 100_000)}
    small, large = figures[1_000][2], figures[100_000][2]
    report.add(
        Row(
            "Matching: CPU per event, 100k subscriptions",
            f"{large / 1000:.3f} ms",
            f"{small / 1000:.3f} ms (1k)",
            f"{large / small:.2f}x",
            "<= 1 ms",
            large <= 1000,
            "10k subscriptions: " + f"{figures[10_000][2] / 1000:.3f} ms",
        )
    )
    report.add(
        Row(
            "Matching: growth 1k -> 100k subscriptions",
            f"{large / 1000:.3f} ms",
            f"{small / 1000:.3f} ms",
            f"{large / small:.2f}x",
            "<= 2x",
            large / small <= 2,
        )
    )


# --- soak and memory -----------------------------------------------------------------------------


async def phase_soak(
    report: Report,
    services: env.Services,
    api_process: env.Process,
    api: str,
    baseline_process: env.Process,
    worker: env.Process,
    receiver: str,
    *,
    seconds: float,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from apps_api.settings import to_asyncpg_url

    connection = await asyncpg.connect(services.asyncpg_url)
    engine = create_async_engine(to_asyncpg_url(services.database_url), pool_size=2)
    pool = await create_pool(RedisSettings.from_dsn(services.redis_url), default_queue_name=env.QUEUE)
    samples: list[tuple[float, float, float]] = []
    try:
        org = await fixtures.create_org(connection, "soak")
        await fixtures.create_webhooked_apps(connection, org, 5, f"{receiver}/hook")
        authorization = f"Token {seed.token_key(0)}"
        paths = list(read_paths().values())
        started = time.monotonic()
        stop = started + seconds

        async def traffic() -> None:
            index = 0
            while time.monotonic() < stop - 1:
                chunk = min(10.0, stop - time.monotonic())
                await asyncio.to_thread(
                    load.wrk,
                    api,
                    paths[index % len(paths)],
                    authorization=authorization,
                    seconds=chunk,
                    connections=8,
                )
                index += 1

        async def events() -> None:
            number = 0
            while time.monotonic() < stop:
                await fixtures.publish(engine, pool, org, [f"soak-{number}"], {"status": "open"})
                number += 1
                await asyncio.sleep(0.05)  # ~20 events/s -> ~100 deliveries/s

        async def sample() -> None:
            while time.monotonic() < stop:
                samples.append((time.monotonic() - started, api_process.rss_mb(), worker.rss_mb()))
                await asyncio.sleep(5)

        await asyncio.gather(traffic(), events(), sample())
        samples.append((time.monotonic() - started, api_process.rss_mb(), worker.rss_mb()))
    finally:
        await pool.aclose()
        await engine.dispose()
        await connection.close()
    # Growth is judged from the first fifth of the soak (warm) to its end.
    warm = next((s for s in samples if s[0] >= seconds / 5), samples[0])
    end = samples[-1]
    api_growth, worker_growth = end[1] - warm[1], end[2] - warm[2]
    report.details.append(
        "- RSS samples during the soak (s, API MB, worker MB): "
        + ", ".join(f"({t:.0f}, {a:.0f}, {w:.0f})" for t, a, w in samples)
    )
    report.add(
        Row(
            "Memory: API RSS after the run",
            f"{end[1]:.0f} MB",
            f"{baseline_process.rss_mb():.0f} MB",
            f"{end[1] / max(baseline_process.rss_mb(), 1):.2f}x",
            "<= 150 MB",
            end[1] <= 150,
            "baseline = the Starlette + asyncpg app after the same read load",
        )
    )
    report.add(
        Row("Memory: worker RSS after the run", f"{end[2]:.0f} MB", "-", "-", "<= 200 MB", end[2] <= 200)
    )
    report.add(
        Row(
            f"Memory: growth over a {seconds:.0f} s soak",
            f"API {api_growth:+.1f} MB",
            f"worker {worker_growth:+.1f} MB",
            "-",
            "no growth (< 5 MB)",
            api_growth < 5 and worker_growth < 5,
            "from the end of the first fifth to the end; reads at 8 conn. + 20 events/s (100 deliveries/s)",
        )
    )


# --- scale --------------------------------------------------------------------------------------

SCALE_READ = 1.2  # hot list pages, the deep page and matching: scaled / 1x
SCALE_INSTALL = 1.3  # the install write: time per install, scaled / 1x


def phase_scale(
    report: Report,
    services: env.Services,
    api: str,
    factor: int,
    seconds: float,
    rounds: int,
) -> None:
    """The service on `factor` times the data set against the 1x set, side by side in the same run.

    A second API process serves the scaled database; the reads, deep-page and write phases'
    measurements run on both APIs, interleaved.
    """
    scaled = env.scaled_services(services, factor)
    started = time.monotonic()
    seeded = asyncio.run(seed.seed(scaled.asyncpg_url, factor=factor))
    seeding = f"seeded in {time.monotonic() - started:.0f} s" if seeded else "seeded earlier, reused"
    for url in (services.asyncpg_url, scaled.asyncpg_url):
        asyncio.run(scaling.prepare(url))
    sizes = [asyncio.run(scaling.database_size(url)) for url in (services.asyncpg_url, scaled.asyncpg_url)]
    label = f"{factor}x"
    with env.api_server(scaled, name=f"api-x{factor}") as (_, scaled_api):
        urls = {"1x": api, label: scaled_api}
        _scale_reads(report, urls, label, max(2.0, seconds / 2), rounds)
        log(f"scale {label}: matching, install writes, log purge")
        _scale_matching(report, services, scaled, factor)
        _scale_install(report, services, scaled, urls, label, seconds, rounds)
    _scale_purge(report, services, scaled, label)
    report.add(
        Row(
            f"Scale {label}: disk of the data set",
            f"{sizes[1] / 2**30:.2f} GiB",
            f"{sizes[0] / 2**30:.2f} GiB (1x)",
            f"{sizes[1] / sizes[0]:.2f}x",
            "-",
            None,
            f"pg_database_size of the {label} database ({_database_name(scaled)}); {seeding}",
        )
    )
    asyncio.run(seed.cleanup(scaled.asyncpg_url))


def _database_name(services: env.Services) -> str:
    return services.asyncpg_url.rsplit("/", 1)[-1]


def _scale_reads(report: Report, urls: dict[str, str], label: str, seconds: float, rounds: int) -> None:
    authorization = f"Token {seed.token_key(0)}"
    measured = measure_reads(urls, read_paths(), authorization, seconds, rounds, connections=1)
    first = read_paths()["GET webhook_log_entries"]
    pages = {who: {"400": page_400(url, first, authorization)} for who, url in urls.items()}
    deep = measure_deep(urls, pages, seconds, rounds)
    figures = {f"{name} page 1": runs for name, runs in measured.items()}
    figures["GET webhook_log_entries page 400"] = {who: deep[(who, "400")] for who in urls}
    for name, runs in figures.items():
        report.add(_scale_read_row(f"Scale {label}: {name}, latency", runs[label], runs["1x"]))


def _scale_read_row(measurement: str, scaled_runs: list[Run], base_runs: list[Run]) -> Row:
    scaled, base = median([r.p50_ms for r in scaled_runs]), median([r.p50_ms for r in base_runs])
    ratio = scaled / base if base else float("inf")
    failures = sum(run.non2xx + run.errors for run in scaled_runs + base_runs)
    return Row(
        measurement,
        f"{scaled:.2f} ms",
        f"{base:.2f} ms (1x)",
        f"{ratio:.2f}x",
        f"<= {SCALE_READ}x the 1x",
        ratio <= SCALE_READ and not failures,
        (f"{failures} non-2xx/errors; " if failures else "")
        + f"median latency, 1 connection; p99 {median([r.p99_ms for r in scaled_runs]):.2f} vs "
        f"{median([r.p99_ms for r in base_runs]):.2f} ms",
    )


def _scale_matching(report: Report, services: env.Services, scaled: env.Services, factor: int) -> None:
    base, base_matches = asyncio.run(scaling.dispatch_cpu(services.asyncpg_url, seed.ORGANIZATIONS))
    big, big_matches = asyncio.run(scaling.dispatch_cpu(scaled.asyncpg_url, seed.ORGANIZATIONS * factor))
    report.add(
        Row(
            f"Scale {factor}x: matching, dispatcher CPU per event",
            f"{big / 1000:.3f} ms",
            f"{base / 1000:.3f} ms (1x)",
            f"{big / base:.2f}x",
            f"<= {SCALE_READ}x the 1x",
            big / base <= SCALE_READ,
            f"dispatch.fan_out on each database ({scaling.DISPATCH_EVENTS:,} events over all its organizations, matcher "
            f"cache warm); {big_matches:.1f} vs {base_matches:.1f} deliveries per event",
        )
    )


def _scale_install(
    report: Report,
    services: env.Services,
    scaled: env.Services,
    urls: dict[str, str],
    label: str,
    seconds: float,
    rounds: int,
) -> None:
    targets = {"1x": (services.asyncpg_url, urls["1x"]), label: (scaled.asyncpg_url, urls[label])}
    results = asyncio.run(measure_writes(targets, seconds, rounds, kinds=("install",)))
    scaled_rps = median([r.rps for r in results[("install", label)]])
    base_rps = median([r.rps for r in results[("install", "1x")]])
    ratio = base_rps / scaled_rps if scaled_rps else float("inf")
    failures = sum(run.non2xx + run.errors for runs in results.values() for run in runs)
    report.add(
        Row(
            f"Scale {label}: POST app_installations, time per install",
            f"{scaled_rps:,.0f} req/s",
            f"{base_rps:,.0f} req/s (1x)",
            f"{ratio:.2f}x",
            f"<= {SCALE_INSTALL}x the 1x",
            ratio <= SCALE_INSTALL and not failures,
            (f"{failures} non-2xx/errors; " if failures else "")
            + "ratio = 1x throughput / scaled throughput, 32 conn.; p99 "
            f"{median([r.p99_ms for r in results[('install', label)]]):.0f} vs "
            f"{median([r.p99_ms for r in results[('install', '1x')]]):.0f} ms",
        )
    )


def _scale_purge(report: Report, services: env.Services, scaled: env.Services, label: str) -> None:
    base = asyncio.run(scaling.purge_day(services.asyncpg_url))
    big = asyncio.run(scaling.purge_day(scaled.asyncpg_url))
    report.add(
        Row(
            f"Scale {label}: purge of one day's log partition",
            f"{big.detach_drop_ms:,.0f} ms",
            f"{big.delete_ms:,.0f} ms (DELETE)",
            f"{big.detach_drop_ms / big.delete_ms:.3f}x",
            "-",
            None,
            f"{label}: DETACH + DROP of {big.partition} ({big.rows:,} rows) against a DELETE of the same "
            f"rows; 1x: {base.detach_drop_ms:,.0f} ms against {base.delete_ms:,.0f} ms ({base.rows:,} rows); "
            "each in a transaction rolled back (the data set stays), so neither commit nor the "
            "DELETE's vacuum is counted",
        )
    )


# --- machine, plans, report ----------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "load": " / ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


async def versions(services: env.Services) -> dict[str, str]:
    import redis.asyncio as redis

    connection = await asyncpg.connect(services.asyncpg_url)
    try:
        postgres = str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()
    client = redis.Redis.from_url(services.redis_url)
    try:
        redis_version = str((await client.info("server"))["redis_version"])
    finally:
        await client.aclose()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    result = {"PostgreSQL": postgres, "Redis": redis_version, "wrk": wrk_version}
    for package in (
        "fastapi",
        "starlette",
        "pydantic",
        "sqlalchemy",
        "asyncpg",
        "uvicorn",
        "uvloop",
        "httptools",
        "arq",
        "httpx",
        "orjson",
    ):
        try:
            result[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            result[package] = "-"
    return result


async def explain_plans(services: env.Services) -> list[tuple[str, str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the hot queries, on the seeded data."""
    from apps_api.delivery import dispatch
    from apps_api.delivery import lease as delivery
    from bench import baseline

    connection = await asyncpg.connect(services.asyncpg_url)
    try:
        import hashlib

        org, app = seed.org_id(0), seed.app_id(0)
        row = await connection.fetchrow(
            "SELECT created_at, id FROM webhook_log_entries WHERE app_id = $1 ORDER BY created_at DESC, id DESC "
            "OFFSET 9974 LIMIT 1",
            app,
        )
        queries = [
            (
                "Token lookup (every request)",
                baseline.AUTH_SQL,
                [hashlib.sha256(seed.token_key(0).encode()).digest(), datetime.now(UTC)],
            ),
            ("owned_apps page 1", baseline.OWNED_PAGE_SQL, [org, 26]),
            ("public_apps page 1", baseline.PUBLIC_PAGE_SQL, [26]),
            ("webhook_log_entries page 1", baseline.LOG_PAGE_SQL, [app, 26]),
            (
                "webhook_log_entries page 400 (keyset, `previous` probe in the same statement)",
                baseline.LOG_PAGE_AFTER_SQL,
                [app, row["created_at"], row["id"], 26],
            ),
            (
                "Dispatcher: installations of the events' organizations",
                dispatch._INSTALLATIONS,
                # Removals kept for events whose snapshot predates them: none older than this.
                [[seed.org_id(5)], 2**63 - 1],
            ),
            (
                "Dispatcher: channel subscriptions of installed apps (matcher cache misses)",
                dispatch._MATCHER_ROWS,
                [[seed.app_id(n) for n in range(0, 500, 10)]],
            ),
            (
                "Worker: lease an endpoint's free slots and start their log entries (rolled back)",
                delivery.LEASE,
                [
                    "https://hooks.example.com:443",
                    datetime.now(UTC),
                    10,
                    10,
                    datetime.now(UTC),
                    "bench-explain",
                    delivery.INTERRUPTED_LAST,
                ],
            ),
        ]
        queries += await _compiled_plans(connection)
        plans = []
        for title, sql, parameters in queries:
            # EXPLAIN ANALYZE runs the statement: writes are rolled back.
            transaction = connection.transaction()
            await transaction.start()
            try:
                rows = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *parameters)
            finally:
                await transaction.rollback()
            plans.append((title, "\n".join(r[0] for r in rows)))
        return plans
    finally:
        await connection.close()


async def _compiled_plans(connection: asyncpg.Connection) -> list[tuple[str, str, list[Any]]]:
    """The ORM-built statements among the hot ones, compiled with their values inline."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from apps_api.delivery import maintenance as tasks
    from apps_api.webhooks.repository import delivery_stats

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    webhook = await connection.fetchval(
        "SELECT webhook_id FROM webhook_log_entries WHERE webhook_id IS NOT NULL "
        "AND created_at > now() - interval '1 day' LIMIT 1"
    )
    plans: list[tuple[str, str, list[Any]]] = []
    if webhook is not None:
        plans.append(
            (
                "Webhook view: delivery_stats over the last 24 h (one webhook of the seeded log)",
                sql(select(delivery_stats(webhook).label("stats"))),
                [],
            )
        )
    cutoff = datetime.now(UTC) - timedelta(days=7)
    for table, statement in tasks.purge_batches(cutoff):
        plans.append(
            (f"Purge: one batch of {table} past a 7-day retention (rolled back)", sql(statement), [])
        )
    return plans


def write_results(
    report: Report,
    info: dict[str, str],
    versions_: dict[str, str],
    plans: list[tuple[str, str]],
    args: argparse.Namespace,
    where: str,
) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `.venv/bin/python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"({time.monotonic() - report.started:.0f} s). Do not edit: run the benchmark again.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores; memory {info['memory']}; Linux {info['kernel']}",
        f"- Python {info['python']}; " + "; ".join(f"{k} {v}" for k, v in versions_.items()),
        f"- Services: {where}; everything on 127.0.0.1; the load generator (wrk, 1 thread), the service "
        "(one uvicorn process), the baseline, the worker, the receiver and PostgreSQL share the same cores.",
        f"- Load average (1/5/15 min) when the run started: {info['load']}; at its end: "
        + " / ".join(Path("/proc/loadavg").read_text().split()[:3])
        + " (other work on the machine shows up here; the figures are only as quiet as the machine was).",
        f"- Run: `--seconds {args.seconds} --rounds {args.rounds} --soak {args.soak} --scale {args.scale}`; each figure is the median "
        "of the rounds, service and baseline rounds interleaved.",
    ]
    skipped = [phase for phase in PHASES if phase not in args.phases]
    if skipped:
        lines.append(
            f"- **Partial run** (`--only {','.join(args.phases)}`): the phases {', '.join(skipped)} did not run, "
            "so their rows are missing below; a full run (no `--only`) gives the whole table."
        )
    if args.profile:
        lines.append(
            f"- Profiled run (`--profile {args.profile}`): py-spy sampled the API during the reads phase, "
            "on the same cores, so these reads figures are lower than an unprofiled run's."
        )
    lines += [
        "",
        "## Results",
        "",
        "| Measurement | Service | Baseline | Ratio | Target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in report.rows:
        mark = "" if row.ok is None else ("pass" if row.ok else "**MISS**")
        lines.append(
            f"| {row.measurement} | {row.service} | {row.baseline} | {row.ratio} | {row.target} | {mark} |"
        )
    notes = [row for row in report.rows if row.note]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {row.measurement}: {row.note}" for row in notes]
    if report.details:
        lines += ["", "## Checks", "", *report.details]
    if plans:
        lines += ["", "## Query plans (EXPLAIN ANALYZE, BUFFERS) on the seeded data", ""]
        for title, plan in plans:
            lines += [f"### {title}", "", "```", plan, "```", ""]
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text().strip(), ""]
    RESULTS.write_text("\n".join(lines).rstrip() + "\n")


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def run_api_phases(
    report: Report, args: argparse.Namespace, services: env.Services, api_pid: int, api: str, base: str
) -> None:
    """The phases that need only the API and the baseline (no worker, no receiver)."""
    if "reads" in args.phases:
        log("API reads (wrk, 32 connections)")
        with profiled(api_pid, "reads", args.profile):
            phase_reads(report, api, base, args.seconds, args.rounds)
    if "deep" in args.phases:
        log("deep pages (wrk, 1 connection)")
        phase_deep(report, api, base, max(2.0, args.seconds / 2), args.rounds)
    if "overload" in args.phases:
        log(f"overload (wrk, {', '.join(str(READS_CONNECTIONS * f) for f in OVERLOAD_FACTORS)} connections)")
        phase_overload(report, api, args.seconds, args.rounds)
    if "writes" in args.phases:
        log("API writes (wrk, 32 connections)")
        asyncio.run(phase_writes(report, services.asyncpg_url, api, base, args.seconds, args.rounds))
    if "matching" in args.phases:
        log("matching (CPU per event)")
        phase_matching(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5, help="length of one timed round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (median; default 3)")
    parser.add_argument(
        "--soak", type=float, default=60, help="soak length in seconds (default 60; 300 = 5 min)"
    )
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated phases of {','.join(PHASES)}"
    )
    parser.add_argument("--fanout-events", type=int, default=20, help="events per fan-out round (default 20)")
    parser.add_argument(
        "--fanout-webhooks", type=int, default=100, help="webhooks each event reaches (default 100)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20, help="length of the latency stream (default 20)"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=10,
        help="the scale phase's data set, N times the 1x one (default 10), in the database <bench database>_xN",
    )
    parser.add_argument("--reseed", action="store_true", help="drop and seed the data set again")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table only; leave RESULTS.md alone"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="flamegraph",
        choices=("flamegraph", "speedscope"),
        help="record the API process with py-spy during the reads phase into bench/profiles/ "
        "(flamegraph SVG by default, or speedscope JSON)",
    )
    args = parser.parse_args(argv)
    phases = [phase.strip() for phase in args.only.split(",") if phase.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not phases:
        parser.error("--only names no phase")
    if args.profile and "reads" not in phases:
        parser.error("--profile records the reads phase: include it in --only")
    args.phases = [phase for phase in PHASES if phase in phases]
    if not load.wrk_available():
        parser.error("wrk is missing: apt-get install -y wrk (Debian's package), or run bench/setup.sh")
    report = Report()
    log("starting services")
    services = env.start_services()
    try:
        log(f"{services.description}; seeding (reused when present)")
        asyncio.run(seed.seed(services.asyncpg_url, force=args.reseed))
        flush_redis(services.redis_url)
        info, versions_ = machine(), asyncio.run(versions(services))
        per_endpoint = "10"
        concurrency = int(os.environ.get("APPS_API_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT", per_endpoint))
        print(
            f"  {'measurement':<56} {'service':>22} {'baseline':>22} {'ratio':>8} {'target':>22}", flush=True
        )
        needs_worker = any(phase in phases for phase in WORKER_PHASES)
        with (
            env.api_server(services) as (api_process, api),
            env.baseline_server(services) as (baseline_process, base),
            env.receiver_process() if needs_worker else nullcontext((None, "")) as (_, receiver),
        ):
            run_api_phases(report, args, services, api_process.pid, api, base)
            if needs_worker:
                # The worker starts on an empty queue: write benchmarks left dispatch jobs and events behind.
                asyncio.run(seed.cleanup_run_data_events(services.asyncpg_url))
                flush_redis(services.redis_url)
                with env.worker_process(services) as worker:
                    if "fanout" in phases:
                        log("webhook fan-out (one worker process, one receiver process)")
                        asyncio.run(
                            phase_fanout(
                                report,
                                services,
                                receiver,
                                rounds=args.rounds,
                                events=args.fanout_events,
                                webhooks=args.fanout_webhooks,
                                concurrency=concurrency,
                                worker=worker,
                            )
                        )
                    if "latency" in phases:
                        log("end-to-end latency (100 events/s)")
                        asyncio.run(
                            phase_latency(
                                report,
                                services,
                                receiver,
                                seconds=args.latency_seconds,
                                rate=100,
                                worker=worker,
                            )
                        )
                    if "soak" in phases:
                        log(f"soak and memory ({args.soak:.0f} s)")
                        asyncio.run(
                            phase_soak(
                                report,
                                services,
                                api_process,
                                api,
                                baseline_process,
                                worker,
                                receiver,
                                seconds=args.soak,
                            )
                        )
            if "scale" in phases:
                log(f"scale: {args.scale}x the data set in a second database, a second API on it")
                phase_scale(report, services, api, args.scale, args.seconds, args.rounds)
        plans = asyncio.run(explain_plans(services))
        asyncio.run(seed.cleanup(services.asyncpg_url))
        if not args.no_write:
            write_results(report, info, versions_, plans, args, services.description)
            log(f"wrote {RESULTS.relative_to(env.ROOT)}")
    finally:
        services.stop()
    return 0
