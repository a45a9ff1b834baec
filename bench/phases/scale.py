"""scale: the service on `--scale N` times the data set against the 1x set, side by side in one run.

A second API process serves the scaled database; the reads', deep page's and install write's
measurements run on both APIs, interleaved; the dispatcher's CPU per event, one day's log purge
and the disk of each data set are measured on both databases.
"""

from __future__ import annotations

import asyncio

from bench import dataset, env, scaling
from bench.load import Run
from bench.phases.base import Context, Need, Phase
from bench.phases.deep import measure_deep, page_400
from bench.phases.reads import authorization, measure_reads, read_paths
from bench.phases.writes import measure_writes
from bench.report import Row, log, median

SCALE_READ = 1.2  # hot list pages, the deep page and matching: scaled / 1x
SCALE_INSTALL = 1.3  # the install write: time per install, scaled / 1x


def run(context: Context) -> None:
    services, scaled, options = context.services, context.scaled.services, context.options
    sizes = [asyncio.run(scaling.database_size(url)) for url in (services.asyncpg_url, scaled.asyncpg_url)]
    label = f"{options.scale}x"
    with env.api_server(scaled, name=f"api-x{options.scale}") as (_, scaled_api):
        urls = {"1x": context.url(Need.API), label: scaled_api}
        _reads(context, urls, label)
        log(f"scale {label}: matching, install writes, log purge")
        _matching(context)
        _install(context, urls, label)
    _purge(context, label)
    context.report.add(
        Row(
            f"Scale {label}: disk of the data set",
            f"{sizes[1] / 2**30:.2f} GiB",
            f"{sizes[0] / 2**30:.2f} GiB (1x)",
            f"{sizes[1] / sizes[0]:.2f}x",
            "-",
            None,
            f"pg_database_size of the {label} database ({_database_name(scaled)}); {context.scaled.seeding}",
        )
    )


def _database_name(services: env.Services) -> str:
    return services.asyncpg_url.rsplit("/", 1)[-1]


def _reads(context: Context, urls: dict[str, str], label: str) -> None:
    seconds, rounds = max(2.0, context.options.seconds / 2), context.options.rounds
    measured = measure_reads(urls, read_paths(), authorization(), seconds, rounds, connections=1)
    first = read_paths()["GET webhook_log_entries"]
    pages = {who: {"400": page_400(url, first, authorization())} for who, url in urls.items()}
    deep = measure_deep(urls, pages, seconds, rounds)
    figures = {f"{name} page 1": runs for name, runs in measured.items()}
    figures["GET webhook_log_entries page 400"] = {who: deep[(who, "400")] for who in urls}
    for name, runs in figures.items():
        context.report.add(_read_row(f"Scale {label}: {name}, latency", runs[label], runs["1x"]))


def _read_row(measurement: str, scaled_runs: list[Run], base_runs: list[Run]) -> Row:
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


def _matching(context: Context) -> None:
    factor, organizations = context.options.scale, dataset.ORGANIZATIONS
    base, base_matches = asyncio.run(scaling.dispatch_cpu(context.services.asyncpg_url, organizations))
    big, big_matches = asyncio.run(
        scaling.dispatch_cpu(context.scaled.services.asyncpg_url, organizations * factor)
    )
    context.report.add(
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


def _install(context: Context, urls: dict[str, str], label: str) -> None:
    targets = {
        "1x": (context.services.asyncpg_url, urls["1x"]),
        label: (context.scaled.services.asyncpg_url, urls[label]),
    }
    results = asyncio.run(
        measure_writes(targets, context.options.seconds, context.options.rounds, kinds=("install",))
    )
    scaled_rps = median([r.rps for r in results[("install", label)]])
    base_rps = median([r.rps for r in results[("install", "1x")]])
    ratio = base_rps / scaled_rps if scaled_rps else float("inf")
    failures = sum(run.non2xx + run.errors for runs in results.values() for run in runs)
    context.report.add(
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


def _purge(context: Context, label: str) -> None:
    base = asyncio.run(scaling.purge_day(context.services.asyncpg_url))
    big = asyncio.run(scaling.purge_day(context.scaled.services.asyncpg_url))
    context.report.add(
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


PHASE = Phase(
    "scale",
    "scale: {scale}x the data set in a second database, a second API on it",
    frozenset({Need.WRK, Need.API, Need.SCALED}),
    run,
)
