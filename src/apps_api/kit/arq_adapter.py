"""The one gap between arq and what the worker needs: outliving a Redis that is briefly away.

arq runs the worker's jobs and cron through its public API (`Worker(...)`, `Worker.main()`,
`Worker.close()`, `Worker.main_task`, `poll_delay`); nothing here overrides its methods. What
arq does not do is survive its queue's Redis going away: a failed poll ends `Worker.main()`.
PostgreSQL holds every job's work (the sweeper finds it again), so the right answer to an
unreachable Redis is to wait and poll again, which `run()` does.

The arq behaviours this relies on, each tested in tests/kit/test_arq_adapter.py:
- a Redis error during a poll is raised out of `Worker.main()`, and the jobs already running
  go on (they are their own tasks);
- calling `Worker.main()` again resumes polling with the same worker state; it runs
  `on_startup` again, so the worker's start-up must be idempotent (`worker.create_worker`);
- its signal handlers (SIGTERM, SIGINT) cancel `Worker.main_task` after the running jobs
  finish, so pointing `main_task` at this loop lets a signal end it.
"""

from __future__ import annotations

import asyncio
import logging

from arq import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError)
RETRY_SECONDS = 1.0


async def _main(worker: Worker) -> None:
    """`worker.main()`, started again whenever Redis failed under it, until it returns or is cancelled."""
    while True:
        try:
            await worker.main()
            return
        except REDIS_UNREACHABLE as error:
            logger.warning(
                "Redis unreachable (%s); polling again in %.0f s", type(error).__name__, RETRY_SECONDS
            )
            await asyncio.sleep(RETRY_SECONDS)


def run(worker: Worker) -> None:
    """Run `worker` until a signal stops it, as `Worker.run()` does, but through Redis outages."""
    worker.main_task = worker.loop.create_task(_main(worker))
    try:
        worker.loop.run_until_complete(worker.main_task)
    except asyncio.CancelledError:
        pass  # a signal's shutdown: arq's handler cancelled main_task
    finally:
        worker.loop.run_until_complete(worker.close())
