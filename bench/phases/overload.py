"""overload: GET owned_apps at 4x and 16x the reads phase's connections (load shedding)."""

from __future__ import annotations

from typing import Any

from bench import load
from bench.phases.base import Context, Need, Phase
from bench.phases.reads import CONNECTIONS, authorization, read_paths
from bench.report import Row, median

FACTORS = (4, 16)


def run(context: Context) -> None:
    """GET owned_apps at 4x and 16x the reads phase's connections: what the admitted requests see.

    Past APPS_API_MAX_REQUESTS_IN_FLIGHT the service answers 503 at once (shedding); the rows
    give the p99 of the 2xx responses alone (bench/load.py, STATUS_LUA: per-request latency from
    a send time the service echoes back), the share shed, and any 500 or socket error.
    """
    reference = _runs(context, CONNECTIONS)
    reference_p99 = median([run.admitted_p99_ms for run in reference])
    for factor in FACTORS:
        connections = CONNECTIONS * factor
        runs = _runs(context, connections)
        # A run in which no request was admitted has no p99 (wrk's script says -1): left out.
        answered = [run.admitted_p99_ms for run in runs if run.admitted_p99_ms >= 0]
        p99 = median(answered) if answered else None
        context.report.add(
            Row(
                f"Overload: GET owned_apps at {connections} conn. ({factor}x), admitted p99",
                "none admitted" if p99 is None else f"{p99:.1f} ms",
                f"{reference_p99:.1f} ms ({CONNECTIONS} conn.)",
                "-" if p99 is None or not reference_p99 else f"{p99 / reference_p99:.2f}x",
                "no 500",
                sum(run.statuses.get(500, 0) for run in runs) == 0,
                _note(runs),
            )
        )


def _runs(context: Context, connections: int) -> list[load.StatusRun]:
    api, options = context.url(Need.API), context.options
    path = read_paths()["GET owned_apps"]
    return [
        load.wrk_by_status(
            api, path, authorization=authorization(), seconds=options.seconds, connections=connections
        )
        for _ in range(options.rounds)
    ]


def _pooled(counts: list[dict[Any, int]]) -> dict[Any, int]:
    total: dict[Any, int] = {}
    for one in counts:
        for key, count in one.items():
            total[key] = total.get(key, 0) + count
    return total


def _note(runs: list[load.StatusRun]) -> str:
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


PHASE = Phase(
    "overload",
    f"overload (wrk, {', '.join(str(CONNECTIONS * f) for f in FACTORS)} connections)",
    frozenset({Need.WRK, Need.API}),
    run,
)
