"""The arq worker: functions and cron jobs of every domain, and the engines they share."""

from __future__ import annotations

import gc
import logging
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from sqlalchemy.pool import NullPool

from apps_api.delivery import tasks as webhook_tasks
from apps_api.delivery.attempts import open_deliverer
from apps_api.delivery.context import WORKER_CONTEXT, WorkerContext, worker_context
from apps_api.kit.crypto import configure_encryption
from apps_api.kit.db import create_engine, create_sessionmaker
from apps_api.observability.delivery_metrics import start_worker_metrics_server
from apps_api.settings import Settings

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# The dispatcher and the pumps allocate many short-lived objects per event and per delivery,
# while the matcher cache holds many long-lived ones (reloaded every second). With CPython's
# default thresholds (700, 10, 10) the collector took over half of the dispatcher's CPU
# (bench/ANALYSIS.md, fifth round), and more as the cache grew with the data. Rarer young
# collections, and start-up's objects frozen out of every full one, keep it to a small share.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    """Fewer collections for the worker's allocation pattern; start-up objects never rescanned."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trip check used by health checks and tests."""
    return "pong"


def worker_functions() -> list[Any]:
    """Every task the worker runs; domains append theirs here."""
    return [ping, *webhook_tasks.functions()]


def worker_cron_jobs(settings: Settings) -> list[Any]:
    """Periodic jobs (sweepers, purges); domains append theirs here."""
    return [*webhook_tasks.cron_jobs(settings)]


def _open_context(ctx: dict[str, Any], settings: Settings) -> WorkerContext:
    """The engines, the delivery machinery and arq's handles every job shares."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    settle_engine = create_engine(settings, generic_plans=True)
    return WorkerContext(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        settle_engine=settle_engine,
        listen_engine=create_engine(
            settings, database_url=settings.listen_database_url or settings.database_url, poolclass=NullPool
        ),
        deliverer=open_deliverer(settings=settings, sessionmaker=sessionmaker, settle_engine=settle_engine),
        redis=ctx.get("redis"),
        arq_worker=ctx.get("arq_worker"),
    )


async def _start(ctx: dict[str, Any], settings: Settings) -> None:
    """The worker's start-up (arq's `on_startup`): its context, the delivery machinery, metrics."""
    if WORKER_CONTEXT in ctx:
        # arq runs this again when polling resumes after a Redis outage (kit/arq_adapter.py).
        logger.info("worker polling its queue again")
        return
    configure_encryption(settings.encryption_keys)
    context = _open_context(ctx, settings)
    ctx[WORKER_CONTEXT] = context
    webhook_tasks.startup(context)
    start_worker_metrics_server(settings.worker_metrics_port, settings.worker_metrics_host)
    tune_garbage_collector()
    logger.info("worker started on queue %s", settings.queue_name)


async def _stop(ctx: dict[str, Any]) -> None:
    """The worker's shutdown (arq's `on_shutdown`): deliveries first, then the engines."""
    context = worker_context(ctx)
    await webhook_tasks.close(context)
    for engine in (context.engine, context.settle_engine, context.listen_engine):
        await engine.dispose()
    logger.info("worker stopped")


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        await _start(ctx, settings)

    options: dict[str, Any] = {
        "functions": worker_functions(),
        "cron_jobs": worker_cron_jobs(settings),
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or ""),
        "queue_name": settings.queue_name,
        "on_startup": on_startup,
        "on_shutdown": _stop,
        "max_jobs": 50,
        # How soon a job enqueued elsewhere (a trigger, a retry, another worker's endpoint)
        # starts: one ZRANGEBYSCORE per poll is cheap for Redis, and events do not wait on it
        # (they arrive by NOTIFY).
        "poll_delay": POLL_SECONDS,
        "handle_signals": True,
        # SIGTERM: stop taking jobs and let running attempts finish (each is bounded by the
        # webhook timeout); whatever still runs after this is cancelled, its lease lapses and
        # the sweeper re-queues it (docs/operations.md, Guarantees).
        "job_completion_wait": int(settings.webhook_timeout) + 5,
        "keep_result": 60,
    }
    options.update(overrides)
    worker = Worker(**options)
    # Jobs see the worker (through their copy of its context) to stop draining on shutdown.
    worker.ctx["arq_worker"] = worker
    return worker
