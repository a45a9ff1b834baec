"""Removing a test run's keys from Redis (it may be a shared one: `APPS_API_TEST_REDIS_URL`).

A run's keys are namespaced by its queue name (`apps_api_test:<run id>`, see conftest): the queue
itself, its health-check key, the cron job ids named after it, and the job keys of whatever is
still queued (arq's job keys are global, so they are found through the queue's members).
"""

from __future__ import annotations

from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import (
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)


async def remove_queue_keys(redis_url: str, queue_name: str) -> list[str]:
    """Delete every key of the queue's namespace; returns the keys deleted."""
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        keys = {queue_name, queue_name + health_check_key_suffix}
        for member in await redis.zrange(queue_name, 0, -1):
            job_id = member.decode()
            keys.update(
                prefix + job_id
                for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix, result_key_prefix)
            )
        async for key in redis.scan_iter(match=f"*{queue_name}*"):
            keys.add(key.decode())
        existing = [key for key in sorted(keys) if await redis.exists(key)]
        if existing:
            await redis.delete(*existing)
        return existing
    finally:
        await redis.aclose()
