"""soak: the API's and the worker's memory under reads at 8 connections and 20 events/s."""

from __future__ import annotations

import asyncio
import time

from bench import fixtures, load
from bench.phases.base import Context, Need, Phase
from bench.phases.reads import authorization, read_paths
from bench.report import Row

# (seconds since the start, API RSS MB, worker RSS MB)
Sample = tuple[float, float, float]


async def _load(context: Context, seconds: float, samples: list[Sample]) -> None:
    """Reads, events and RSS samples side by side for `seconds`."""
    api, worker = context.process(Need.API), context.process(Need.WORKER)
    async with fixtures.publisher(context.services, pool_size=2) as publisher:
        org = await fixtures.create_org(publisher.connection, "soak")
        await fixtures.create_webhooked_apps(
            publisher.connection, org, 5, f"{context.url(Need.RECEIVER)}/hook"
        )
        started = time.monotonic()
        stop = started + seconds

        async def events() -> None:
            number = 0
            while time.monotonic() < stop:
                await fixtures.publish(
                    publisher.engine, publisher.pool, org, [f"soak-{number}"], {"status": "open"}
                )
                number += 1
                await asyncio.sleep(0.05)  # ~20 events/s -> ~100 deliveries/s

        async def sample() -> None:
            while time.monotonic() < stop:
                samples.append((time.monotonic() - started, api.rss_mb(), worker.rss_mb()))
                await asyncio.sleep(5)

        await asyncio.gather(_traffic(context.url(Need.API), stop), events(), sample())
        samples.append((time.monotonic() - started, api.rss_mb(), worker.rss_mb()))


async def _traffic(api: str, stop: float) -> None:
    """The hot lists in turn, 8 connections, in chunks of up to 10 s until `stop`."""
    paths = list(read_paths().values())
    index = 0
    while time.monotonic() < stop - 1:
        chunk = min(10.0, stop - time.monotonic())
        await asyncio.to_thread(
            load.wrk,
            api,
            paths[index % len(paths)],
            authorization=authorization(),
            seconds=chunk,
            connections=8,
        )
        index += 1


async def run(context: Context) -> None:
    seconds = context.options.soak
    samples: list[Sample] = []
    await _load(context, seconds, samples)
    baseline = context.process(Need.BASELINE)
    # Growth is judged from the first fifth of the soak (warm) to its end.
    warm = next((s for s in samples if s[0] >= seconds / 5), samples[0])
    end = samples[-1]
    api_growth, worker_growth = end[1] - warm[1], end[2] - warm[2]
    report = context.report
    report.details.append(
        "- RSS samples during the soak (s, API MB, worker MB): "
        + ", ".join(f"({t:.0f}, {a:.0f}, {w:.0f})" for t, a, w in samples)
    )
    report.add(
        Row(
            "Memory: API RSS after the run",
            f"{end[1]:.0f} MB",
            f"{baseline.rss_mb():.0f} MB",
            f"{end[1] / max(baseline.rss_mb(), 1):.2f}x",
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


PHASE = Phase(
    "soak",
    "soak and memory ({soak:.0f} s)",
    frozenset({Need.WRK, Need.API, Need.BASELINE, Need.RECEIVER, Need.WORKER}),
    run,
)
