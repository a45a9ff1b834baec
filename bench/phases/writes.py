"""writes: create an app and install one, service against baseline, wrk at 32 connections.

Both sides write real rows and must answer 2xx: an organization may own at most
`MAX_APPS_PER_ORGANIZATION` apps (409 past it, the baseline checks the same way), so every create
round cycles through a fresh pool of organizations with room for more creates than either side can
make in the round, and a side that answers more than `MAX_FAILURE_RATE` of its writes with an error
misses, whatever its throughput.
"""

from __future__ import annotations

import json
import math
import urllib.request
from dataclasses import dataclass

import asyncpg

from apps_api.apps.service import MAX_APPS_PER_ORGANIZATION
from bench import fixtures, load
from bench.baseline import sql as baseline_sql
from bench.load import Run
from bench.phases.base import Context, Need, Phase
from bench.phases.reads import fetch
from bench.report import Row, median

APP_BODY = json.dumps(
    {
        "name": "Bench written app",
        "description": "Created by the write benchmark.",
        "is_app_user_required": False,
        "terms_of_service_url": "https://apps.example.com/terms",
        "privacy_policy_url": "https://apps.example.com/privacy",
    }
)
WRITE_THROUGHPUT = 0.5  # target: service req/s >= 0.5x the baseline's
MAX_FAILURE_RATE = 0.01  # more non-2xx answers or socket errors than this on either side: a miss
# Writes per second a round leaves room for, on either side: past them creates would meet the
# cap and installs the apps already installed (409s). The baseline's best so far: ~3,100 creates
# and ~1,900 installs a second.
CREATE_CEILING = 10_000
INSTALL_CEILING = 5_000

assert baseline_sql.MAX_APPS_PER_ORGANIZATION == MAX_APPS_PER_ORGANIZATION, (
    "the baseline's cap must be the service's"
)


def _room(ceiling: int, seconds: float) -> int:
    """Writes a round of `seconds` (as wrk rounds them) leaves room for at `ceiling` a second."""
    return ceiling * max(1, round(seconds))


async def measure_writes(
    targets: dict[str, tuple[str, str]],
    seconds: float,
    rounds: int,
    kinds: tuple[str, ...] = ("create", "install"),
) -> dict[tuple[str, str], list[Run]]:
    """wrk runs of the writes (`kinds`) on each server (who -> (database URL, base URL)), interleaved.

    Each server writes into organizations of its own, in its own database.
    """
    connections = {who: await asyncpg.connect(database_url) for who, (database_url, _) in targets.items()}
    try:
        writers = {
            who: _Writer(
                who, connection, targets[who][1], await fixtures.create_org(connection, f"writes-{who}")
            )
            for who, connection in connections.items()
        }
        results: dict[tuple[str, str], list[Run]] = {}
        who = list(targets)
        for index in range(rounds + 1):  # round 0 warms up
            for key in who if index % 2 == 0 else who[::-1]:
                for kind in kinds:
                    run = await writers[key].run(kind, seconds if index else 1)
                    if index:
                        results.setdefault((kind, key), []).append(run)
        return results
    finally:
        for connection in connections.values():
            await connection.close()


@dataclass(frozen=True)
class _Writer:
    """One server's writes: its database connection, its URL, its organization for installs."""

    who: str
    connection: asyncpg.Connection
    url: str
    org: fixtures.RunOrg

    async def run(self, kind: str, seconds: float) -> Run:
        if kind == "create":
            return await _create_run(self.connection, self.url, f"creates-{self.who}", seconds)
        return await _install_run(self.connection, self.org, self.url, seconds)


async def _create_run(connection: asyncpg.Connection, url: str, label: str, seconds: float) -> Run:
    """Creates cycling through a fresh pool of organizations, each receiving a create in turn."""
    size = math.ceil(_room(CREATE_CEILING, seconds) / MAX_APPS_PER_ORGANIZATION)
    pool = await fixtures.create_orgs(connection, label, size)
    requests = [
        load.Request(f"/api/v5/orgs/{org.id}/owned_apps", org.authorization, APP_BODY) for org in pool
    ]
    run = load.wrk_cycle(url, requests, seconds=seconds, method="POST")
    written = await connection.fetchval(
        "SELECT count(*) FROM apps WHERE owned_by_organization_id = ANY($1::uuid[])", [org.id for org in pool]
    )
    # Requests still in flight when wrk stopped may add rows, never remove any.
    if written < run.requests - run.failures:
        raise RuntimeError(
            f"{url} answered {run.requests - run.failures} creates with 2xx and wrote {written}"
        )
    return run


async def _install_run(connection: asyncpg.Connection, org: fixtures.RunOrg, url: str, seconds: float) -> Run:
    """Installs of fresh apps of the organization, each installed once."""
    app_ids = await fixtures.create_apps(connection, org, _room(INSTALL_CEILING, seconds))
    return load.wrk(
        url,
        f"/api/v5/orgs/{org.id}/app_installations",
        authorization=org.authorization,
        seconds=seconds,
        method="POST",
        bodies=[json.dumps({"app_id": str(app_id)}) for app_id in app_ids],
    )


def _failed(who: str, runs: list[Run]) -> tuple[float, str]:
    """A side's share of failed writes over its rounds, and how the note says it."""
    requests, failures = sum(run.requests for run in runs), sum(run.failures for run in runs)
    rate = failures / requests if requests else 1.0
    return rate, f"{who} {failures:,} of {requests:,} non-2xx/errors ({rate:.1%})"


def _note(service: list[Run], baseline: list[Run]) -> tuple[bool, str]:
    """Whether either side failed more than `MAX_FAILURE_RATE` of its writes, and the row's note."""
    failed = [_failed("service", service), _failed("baseline", baseline)]
    counts = "; ".join(text for _, text in failed)
    too_many = max(rate for rate, _ in failed) > MAX_FAILURE_RATE
    p99 = f"p99 {median([r.p99_ms for r in service]):.0f} vs {median([r.p99_ms for r in baseline]):.0f} ms"
    if too_many:
        return (
            True,
            f"FAILED: over {MAX_FAILURE_RATE:.0%} of a side's writes did not succeed ({counts}); {p99}",
        )
    return False, (f"{counts}; " if any(rate for rate, _ in failed) else "") + p99


def write_row(label: str, service: list[Run], baseline: list[Run]) -> Row:
    """The row of one write: throughput ratio, and a miss when either side failed too often."""
    service_rps, baseline_rps = median([r.rps for r in service]), median([r.rps for r in baseline])
    ratio = service_rps / baseline_rps if baseline_rps else 0.0
    too_many, note = _note(service, baseline)
    return Row(
        f"{label}: throughput (32 conn.)",
        f"{service_rps:,.0f} req/s",
        f"{baseline_rps:,.0f} req/s",
        f"{ratio:.2f}x",
        f">= {WRITE_THROUGHPUT}x",
        ratio >= WRITE_THROUGHPUT and not too_many,
        note,
    )


def _post(url: str, authorization: str, body: str) -> bytes:
    request = urllib.request.Request(
        url, body.encode(), {"Authorization": authorization, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


async def check_written(database_url: str, urls: dict[str, str]) -> list[str]:
    """Each side creates an app and installs one; the service's GET of each must be the answer's bytes.

    So the baseline writes what the service would (the secret encrypted as it stores it) and
    answers what the service answers; urlopen raises on any error status.
    """
    connection = await asyncpg.connect(database_url)
    try:
        org = await fixtures.create_org(connection, "writes-check")
        same: dict[str, list[bool]] = {"create": [], "install": []}
        for url in urls.values():
            owned = f"{urls['service']}/api/v5/orgs/{org.id}"
            created = _post(f"{url}/api/v5/orgs/{org.id}/owned_apps", org.authorization, APP_BODY)
            got = fetch(f"{owned}/owned_apps/{json.loads(created)['id']}", org.authorization)
            same["create"].append(created == got)
            (app_id,) = await fixtures.create_apps(connection, org, 1)
            body = json.dumps({"app_id": str(app_id)})
            installed = _post(f"{url}/api/v5/orgs/{org.id}/app_installations", org.authorization, body)
            got = fetch(f"{owned}/app_installations/{json.loads(installed)['id']}", org.authorization)
            same["install"].append(installed == got)
    finally:
        await connection.close()
    return [
        f"- POST {route}: the service's and the baseline's answers identical to the service's GET of what "
        f"each wrote: **{'yes' if all(same[kind]) else 'NO'}**"
        for kind, route in (("create", "owned_apps"), ("install", "app_installations"))
    ]


async def run(context: Context) -> None:
    database_url, options = context.services.asyncpg_url, context.options
    api, base = context.url(Need.API), context.url(Need.BASELINE)
    context.report.details += await check_written(database_url, {"service": api, "baseline": base})
    results = await measure_writes(
        {"service": (database_url, api), "baseline": (database_url, base)}, options.seconds, options.rounds
    )
    for kind, label in (
        ("create", "POST owned_apps (create app)"),
        ("install", "POST app_installations"),
    ):
        context.report.add(write_row(label, results[(kind, "service")], results[(kind, "baseline")]))


PHASE = Phase(
    "writes", "API writes (wrk, 32 connections)", frozenset({Need.WRK, Need.API, Need.BASELINE}), run
)
