"""reads: the hot lists and the other benchmarked reads, service against baseline, wrk at 32 connections."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from bench import load, seed
from bench.load import Run
from bench.phases.base import Context, Need, Phase
from bench.profile import profiled
from bench.report import Row, median

# Targets of the reads phase (issue 14): each a ratio to the baseline in the same run.
HOT_THROUGHPUT = 0.6  # the three hot lists: service req/s >= 0.6x the baseline's
HOT_P99 = 1.5  # ... and p99 <= 1.5x the baseline's p99, both at 32 connections
OTHER_THROUGHPUT = 0.5  # every other benchmarked read: >= 0.5x
CONNECTIONS = 32


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


def authorization() -> str:
    """The big tenant's admin token, as every read phase sends it."""
    return f"Token {seed.token_key(0)}"


def fetch(url: str, authorization: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def measure_reads(
    urls: dict[str, str],
    paths: dict[str, str],
    authorization: str,
    seconds: float,
    rounds: int,
    connections: int = CONNECTIONS,
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


@dataclass(frozen=True)
class Figures:
    """The medians of one read's service and baseline runs."""

    service_rps: float
    baseline_rps: float
    service_p99: float
    baseline_p99: float
    failures: int  # non-2xx answers and socket errors, both sides
    p50: str  # "p50 <service> ms vs <baseline> ms"

    @classmethod
    def of(cls, service: list[Run], baseline: list[Run]) -> Figures:
        return cls(
            median([run.rps for run in service]),
            median([run.rps for run in baseline]),
            median([run.p99_ms for run in service]),
            median([run.p99_ms for run in baseline]),
            sum(run.non2xx + run.errors for run in service + baseline),
            f"p50 {median([r.p50_ms for r in service]):.1f} ms vs {median([r.p50_ms for r in baseline]):.1f} ms",
        )

    @property
    def ratio(self) -> float:
        return self.service_rps / self.baseline_rps if self.baseline_rps else 0.0

    @property
    def failed(self) -> str:
        return f"{self.failures} non-2xx/errors; " if self.failures else ""

    def throughput(self, name: str, target: float, note: str) -> Row:
        return Row(
            f"{name}: throughput (32 conn.)",
            f"{self.service_rps:,.0f} req/s",
            f"{self.baseline_rps:,.0f} req/s",
            f"{self.ratio:.2f}x",
            f">= {target}x",
            self.ratio >= target and not self.failures,
            note,
        )

    def p99(self, name: str) -> Row:
        ratio = self.service_p99 / self.baseline_p99 if self.baseline_p99 else float("inf")
        return Row(
            f"{name}: p99 latency (32 conn.)",
            f"{self.service_p99:.1f} ms",
            f"{self.baseline_p99:.1f} ms",
            f"{ratio:.2f}x",
            f"<= {HOT_P99}x the baseline's",
            ratio <= HOT_P99,
            self.p50,
        )


def run(context: Context) -> None:
    with profiled(context.process(Need.API).pid, "reads", context.options.profile):
        _reads(context)


def _reads(context: Context) -> None:
    report, options = context.report, context.options
    api, base = context.url(Need.API), context.url(Need.BASELINE)
    hot = read_paths()
    paths = {**hot, **other_read_paths()}
    for name, path in paths.items():
        # urlopen raises on a 4xx/5xx: two identical error bodies never pass as "identical".
        same = fetch(api + path, authorization()) == fetch(base + path, authorization())
        report.details.append(
            f"- {name}: service and baseline bodies identical: **{'yes' if same else 'NO'}**"
        )
    measured = measure_reads(
        {"service": api, "baseline": base}, paths, authorization(), options.seconds, options.rounds
    )
    for name, runs in measured.items():
        figures = Figures.of(runs["service"], runs["baseline"])
        if name in hot:
            report.add(figures.throughput(name, HOT_THROUGHPUT, figures.failed.removesuffix("; ")))
            report.add(figures.p99(name))
        else:
            note = f"{figures.failed}p99 {figures.service_p99:.1f} vs {figures.baseline_p99:.1f} ms; {figures.p50}"
            report.add(figures.throughput(name, OTHER_THROUGHPUT, note))


PHASE = Phase(
    "reads",
    f"API reads (wrk, {CONNECTIONS} connections)",
    frozenset({Need.WRK, Need.API, Need.BASELINE}),
    run,
)
