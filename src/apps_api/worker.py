"""The arq worker: functions and cron jobs of every domain, with a shared database engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.pool import NullPool

from apps_api.kit.crypto import configure_encryption
from apps_api.kit.db import create_engine, create_sessionmaker
from apps_api.kit.queue import wake_channel
from apps_api.settings import Settings

logger = logging.getLogger(__name__)


class ResilientWorker(Worker):
    """arq's worker, woken by enqueues and surviving a Redis that is briefly unreachable.

    arq only polls its queue (every `poll_delay`): each hop of a webhook (event -> dispatch)
    would wait half a poll on average. Producers publish on the queue's wake channel after an
    enqueue (`kit.queue.enqueue`); the worker polls as soon as it hears one, and every
    `idle_poll` seconds regardless (deferred jobs, a lost wake-up, Redis restarted).

    arq lets a connection error of its queue poll end the worker; PostgreSQL holds every job's
    work, so waiting for Redis to come back loses nothing.
    """

    def __init__(self, *args: Any, idle_poll: float = 0.2, **kwargs: Any) -> None:
        # arq's own sleep between polls is replaced by the wait for a wake-up below.
        kwargs["poll_delay"] = 0
        super().__init__(*args, **kwargs)
        self.idle_poll = idle_poll
        self._woken = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
            logger.warning("Redis unreachable (%s); polling again in 1 s", type(error).__name__)
            await asyncio.sleep(1)
            return
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen_for_wakeups())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), self.idle_poll)
        self._woken.clear()

    def _release_sem_dec_counter_on_complete(self) -> None:
        # A worker that was full polls again as soon as a slot frees.
        was_full = self.job_counter >= self.max_jobs
        super()._release_sem_dec_counter_on_complete()
        if was_full:
            self._woken.set()

    async def _listen_for_wakeups(self) -> None:
        channel = wake_channel(self.queue_name)
        while True:
            pubsub = self.pool.pubsub()
            try:
                await pubsub.subscribe(channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._woken.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis restarting: the timed polls go on meanwhile.
                logger.debug("wake-up channel lost (%s); listening again in 1 s", type(error).__name__)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await super().close()


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trip check used by health checks and tests."""
    return "pong"


def worker_functions() -> list[Any]:
    """Every task the worker runs; domains append theirs here."""
    from apps_api.delivery import tasks as webhook_tasks

    return [ping, *webhook_tasks.functions()]


def worker_cron_jobs(settings: Settings) -> list[Any]:
    """Periodic jobs (sweepers, purges); domains append theirs here."""
    from apps_api.delivery import tasks as webhook_tasks

    return [*webhook_tasks.cron_jobs(settings)]


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        configure_encryption(settings.encryption_keys)
        engine = create_engine(settings)
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["sessionmaker"] = create_sessionmaker(engine)
        # One connection, never pooled (the listener drops it after use), on its own URL.
        ctx["listen_engine"] = create_engine(
            settings, database_url=settings.listen_database_url or settings.database_url, poolclass=NullPool
        )
        from apps_api.delivery import tasks as webhook_tasks

        webhook_tasks.startup(ctx)
        from apps_api.observability.delivery_metrics import start_worker_metrics_server

        start_worker_metrics_server(settings.worker_metrics_port, settings.worker_metrics_host)
        logger.info("worker started on queue %s", settings.queue_name)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        from apps_api.delivery import tasks as webhook_tasks

        await webhook_tasks.close(ctx)
        await ctx["engine"].dispose()
        await ctx["listen_engine"].dispose()
        logger.info("worker stopped")

    options: dict[str, Any] = {
        "functions": worker_functions(),
        "cron_jobs": worker_cron_jobs(settings),
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or ""),
        "queue_name": settings.queue_name,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": 50,
        # Polls happen on every wake-up (see ResilientWorker) and at least this often.
        "idle_poll": 0.2,
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
