"""writes: create an app and install one, service against baseline, wrk at 32 connections."""

from __future__ import annotations

import json

import asyncpg

from bench import fixtures, load
from bench.load import Run
from bench.phases.base import Context, Need, Phase
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


async def run(context: Context) -> None:
    database_url, options = context.services.asyncpg_url, context.options
    api, base = context.url(Need.API), context.url(Need.BASELINE)
    results = await measure_writes(
        {"service": (database_url, api), "baseline": (database_url, base)}, options.seconds, options.rounds
    )
    for kind, label in (
        ("create", "POST owned_apps (create app)"),
        ("install", "POST app_installations"),
    ):
        service, baseline = results[(kind, "service")], results[(kind, "baseline")]
        service_rps, baseline_rps = median([r.rps for r in service]), median([r.rps for r in baseline])
        ratio = service_rps / baseline_rps if baseline_rps else 0.0
        failures = sum(run.non2xx + run.errors for run in service + baseline)
        context.report.add(
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


PHASE = Phase(
    "writes", "API writes (wrk, 32 connections)", frozenset({Need.WRK, Need.API, Need.BASELINE}), run
)
