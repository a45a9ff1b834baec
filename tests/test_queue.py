"""kit.queue: the one-round-trip enqueue writes the job arq's own enqueue_job would."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job

from apps_api.kit.queue import enqueue_new
from apps_api.settings import Settings


async def _jobs(pool: ArqRedis, queue: str) -> list[tuple[str, float]]:
    return [(job_id.decode(), score) for job_id, score in await pool.zrange(queue, 0, -1, withscores=True)]


async def test_enqueue_new_writes_what_enqueue_job_writes(settings: Settings) -> None:
    queue = f"apps_api_test:queue-{uuid.uuid4().hex}"  # No worker listens here.
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=queue)
    try:
        assert await enqueue_new(pool, "dispatch_events", [3, 1, 2])
        reference = await pool.enqueue_job("dispatch_events", [3, 1, 2])
        assert reference is not None
        jobs = await _jobs(pool, queue)
        assert len(jobs) == 2
        ours = next(job_id for job_id, _ in jobs if job_id != reference.job_id)
        mine, theirs = await Job(ours, pool, _queue_name=queue).info(), await reference.info()
        assert mine is not None and theirs is not None
        assert (
            (mine.function, mine.args, mine.kwargs, mine.job_try)
            == (
                theirs.function,
                theirs.args,
                theirs.kwargs,
                theirs.job_try,
            )
            == ("dispatch_events", ([3, 1, 2],), {}, None)
        )
        # Due at its enqueue time (ours was enqueued first), kept as long as arq keeps such a job.
        assert mine.score is not None and theirs.score is not None and mine.score <= theirs.score
        assert 0 < await pool.pttl(f"arq:job:{ours}") <= pool.expires_extra_ms
    finally:
        keys = [f"arq:job:{job_id}" for job_id, _ in await _jobs(pool, queue)]
        await pool.delete(queue, *keys)
        await pool.aclose()


async def test_enqueue_new_without_a_pool_is_a_no_op() -> None:
    assert await enqueue_new(None, "dispatch_events", [1]) is False
