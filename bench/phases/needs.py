"""The phases' needs, each started once: before the first phase that asks for it, stopped after
the last one (the worker is gone before the scale phase writes, as it was never there for the
write phase), whatever the phases asked for in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

from bench import env, scaling, seed
from bench.phases.base import Context, Need, Phase, Scaled
from bench.report import log


@contextmanager
def _server(
    context: Context, need: Need, server: AbstractContextManager[tuple[env.Process, str]]
) -> Iterator[None]:
    with server as (process, url):
        context.processes[need], context.urls[need] = process, url
        try:
            yield
        finally:
            del context.processes[need], context.urls[need]


@contextmanager
def _worker(context: Context) -> Iterator[None]:
    services = context.services
    # The worker starts on an empty queue: write benchmarks left dispatch jobs and events behind.
    asyncio.run(seed.cleanup_run_data_events(services.asyncpg_url))
    env.flush_redis(services.redis_url)
    with env.worker_process(services) as worker:
        context.processes[Need.WORKER] = worker
        try:
            yield
        finally:
            del context.processes[Need.WORKER]


@contextmanager
def _scaled(context: Context) -> Iterator[None]:
    """`--scale N` times the data set in `<bench database>_xN`: seeded once, reused afterwards."""
    services, factor = context.services, context.options.scale
    scaled = env.scaled_services(services, factor)
    started = time.monotonic()
    seeded = asyncio.run(seed.seed(scaled.asyncpg_url, factor=factor))
    seeding = f"seeded in {time.monotonic() - started:.0f} s" if seeded else "seeded earlier, reused"
    for url in (services.asyncpg_url, scaled.asyncpg_url):
        asyncio.run(scaling.prepare(url))
    context.scaled_data = Scaled(scaled, seeding)
    try:
        yield
    finally:
        context.scaled_data = None
        asyncio.run(seed.cleanup(scaled.asyncpg_url))


@contextmanager
def _nothing(context: Context) -> Iterator[None]:
    yield


STARTERS: dict[Need, Callable[[Context], AbstractContextManager[None]]] = {
    Need.WRK: _nothing,  # checked when the phases are chosen (bench/run.py)
    Need.API: lambda context: _server(context, Need.API, env.api_server(context.services)),
    Need.BASELINE: lambda context: _server(context, Need.BASELINE, env.baseline_server(context.services)),
    Need.RECEIVER: lambda context: _server(context, Need.RECEIVER, env.receiver_process()),
    Need.WORKER: _worker,
    Need.SCALED: _scaled,
}


def run_phases(phases: list[Phase], context: Context) -> None:
    """Run the phases in turn, each need started before its first phase and stopped after its last."""
    last = {need: index for index, phase in enumerate(phases) for need in phase.needs}
    with ExitStack() as everything:  # on an error, whatever still runs stops
        started: dict[Need, ExitStack] = {}
        for index, phase in enumerate(phases):
            log(phase.title.format(**vars(context.options)))
            for need in sorted(phase.needs - started.keys(), key=list(Need).index):
                started[need] = everything.enter_context(ExitStack())
                started[need].enter_context(STARTERS[need](context))
            outcome = phase.run(context)
            if asyncio.iscoroutine(outcome):
                asyncio.run(outcome)
            for need in sorted(started, key=list(Need).index, reverse=True):
                if last[need] == index:
                    started.pop(need).close()
