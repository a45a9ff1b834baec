"""The arq worker: functions and cron jobs of every domain, with a shared database engine."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps_api.kit.db import create_engine, create_sessionmaker
from apps_api.settings import Settings

logger = logging.getLogger(__name__)


class ResilientWorker(Worker):
    """arq's worker, surviving a Redis that is briefly unreachable (a restart) between polls.

    arq lets a connection error of its queue poll end the worker; with the short poll delay
    below, a Redis restart would nearly always land in a poll. PostgreSQL holds every job's
    work, so waiting for Redis to come back loses nothing.
    """

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
            logger.warning("Redis unreachable (%s); polling again in 1 s", type(error).__name__)
            await asyncio.sleep(1)


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trip check used by health checks and tests."""
    return "pong"


def worker_functions() -> list[Any]:
    """Every task the worker runs; domains append theirs here."""
    from apps_api.webhooks import tasks as webhook_tasks

    return [ping, *webhook_tasks.functions()]


def worker_cron_jobs() -> list[Any]:
    """Periodic jobs (sweepers, purges); domains append theirs here."""
    from apps_api.webhooks import tasks as webhook_tasks

    return [*webhook_tasks.cron_jobs()]


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings)
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["sessionmaker"] = create_sessionmaker(engine)
        from apps_api.webhooks import tasks as webhook_tasks

        webhook_tasks.startup(ctx)
        from apps_api.observability.delivery_metrics import start_worker_metrics_server

        start_worker_metrics_server(settings.worker_metrics_port, settings.worker_metrics_host)
        logger.info("worker started on queue %s", settings.queue_name)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        from apps_api.webhooks import tasks as webhook_tasks

        await webhook_tasks.close(ctx)
        await ctx["engine"].dispose()
        logger.info("worker stopped")

    options: dict[str, Any] = {
        "functions": worker_functions(),
        "cron_jobs": worker_cron_jobs(),
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or ""),
        "queue_name": settings.queue_name,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": 50,
        # arq sleeps this long between polls of the queue. 50 ms cut the latency of each hop
        # (event -> dispatch -> delivery) but made a Redis restart land in a poll far more
        # often, and the empty-Redis fault test flaky; 0.2 s until that path is hardened.
        "poll_delay": 0.2,
        "handle_signals": True,
        # SIGTERM: stop taking jobs and let running attempts finish (each is bounded by the
        # webhook timeout); whatever still runs after this is cancelled, its lease lapses and
        # the sweeper re-queues it (README, Guarantees).
        "job_completion_wait": int(settings.webhook_timeout) + 5,
        "keep_result": 60,
    }
    options.update(overrides)
    worker = ResilientWorker(**options)
    # Jobs see the worker (through their copy of its context) to stop draining on shutdown.
    worker.ctx["arq_worker"] = worker
    return worker
