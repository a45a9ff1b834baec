"""The arq adapter (kit/arq_adapter.py): the arq behaviours it relies on, on a real worker process.

A dedicated Redis (never the shared one) is stopped under a running worker and started again:
the worker keeps its process, says why it waits, starts polling again without a second
start-up, and runs jobs enqueued after the outage. A stop signal still ends it cleanly.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from apps_api.embedded import start_redis
from apps_api.settings import Settings
from tests.fixtures.webhooks import WorkerProcess, eventually

pytestmark = pytest.mark.subprocess


async def _ping(pool: ArqRedis) -> object:
    job = await pool.enqueue_job("ping")
    assert job is not None
    return await job.result(timeout=60, poll_delay=0.05)


async def test_the_worker_outlives_its_redis_and_polls_again_when_it_returns(settings: Settings) -> None:
    state = Path(tempfile.mkdtemp(prefix="apps-api-arq-adapter-"))
    redis_process, redis_url = start_redis(state)
    assert redis_process is not None
    worker = WorkerProcess(APPS_API_REDIS_URL=redis_url)
    try:
        worker.wait_ready()
        pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=settings.queue_name)
        assert await _ping(pool) == "pong"
        await pool.aclose()

        redis_process.terminate()
        redis_process.wait(10)
        # arq's poll raises out of Worker.main(); the adapter logs it and waits, the process lives.
        await eventually(lambda: "Redis unreachable" in worker.output(), what="the worker to notice")
        assert worker.process.poll() is None, worker.output()

        redis_process, _ = start_redis(state)
        pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=settings.queue_name)
        # Main() again: the same worker picks up a job enqueued after the outage ...
        assert await _ping(pool) == "pong"
        await pool.aclose()
        output = worker.output()
        # ... and its start-up (engines, listener, metrics) ran once; the second pass only resumed.
        assert output.count("worker started on queue") == 1, output
        assert "worker polling its queue again" in output, output
        assert "Traceback" not in output, output

        # arq's signal handler cancels Worker.main_task, which is the adapter's loop.
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0, worker.output()
        assert "worker stopped" in worker.output()
    finally:
        worker.stop()
        if redis_process is not None and redis_process.poll() is None:
            redis_process.terminate()
            redis_process.wait(10)
