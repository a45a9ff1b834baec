"""A test run's Redis keys are named after its queue, and removed at the end of the run."""

from __future__ import annotations

import time

from arq import create_pool
from arq.connections import RedisSettings

from apps_api.delivery.tasks import cron_jobs
from apps_api.settings import Settings
from tests.conftest import RUN_ID
from tests.fixtures.redis_cleanup import remove_queue_keys


def test_the_run_has_a_queue_of_its_own_and_cron_job_ids_name_it(settings: Settings) -> None:
    assert settings.queue_name == f"apps_api_test:{RUN_ID}"
    # arq's job keys are global: a unique cron job's id must name the queue, or runs (and
    # deployments) sharing a Redis skip each other's sweeps.
    assert all(settings.queue_name in job.name for job in cron_jobs(settings))


async def test_the_clean_up_removes_the_queue_and_what_is_still_queued(redis_url: str) -> None:
    queue = f"apps_api_test:{RUN_ID}:clean-up-probe"
    redis = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    try:
        await redis.enqueue_job("deliver_outbound", "x", _job_id=f"probe-{RUN_ID}", _defer_by=3600)
        await redis.set(f"arq:job:cron:{queue}:sweep_outbound:{int(time.time())}", b"x")
        await redis.set(queue + ":health-check", b"x", ex=60)
        await redis.set("apps_api_unrelated_key", b"keep me", ex=60)
        assert await redis.zcard(queue) == 1 and await redis.exists(f"arq:job:probe-{RUN_ID}")

        removed = await remove_queue_keys(redis_url, queue)

        assert queue in removed and f"arq:job:probe-{RUN_ID}" in removed
        assert [key async for key in redis.scan_iter(match=f"*{queue}*")] == []
        assert not await redis.exists(f"arq:job:probe-{RUN_ID}")
        assert await redis.get("apps_api_unrelated_key") == b"keep me"
    finally:
        await redis.delete("apps_api_unrelated_key")
        await redis.aclose()
