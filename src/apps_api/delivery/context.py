"""The worker's context: what its jobs share, built once at start-up (worker.py), typed.

arq hands every job a shallow copy of the worker's `ctx` dict, so whatever a job stores there is
lost when it ends: the HTTP client (its connection pool and TLS context), the matcher cache, the
pumps and the listener live in one `WorkerContext`, kept in that dict under `WORKER_CONTEXT`
and read by every job through `worker_context()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arq import Worker
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.delivery.attempts import Deliverer
from apps_api.delivery.dispatch import SubscriptionIndex
from apps_api.settings import Settings

if TYPE_CHECKING:  # both hold the context
    from apps_api.delivery.engine import EndpointPump
    from apps_api.delivery.listener import EventListener

# The one key of arq's `ctx` this service uses.
WORKER_CONTEXT = "apps_api"


@dataclass
class WorkerContext:
    """The worker's engines, its delivery machinery and its caches, created once per process."""

    settings: Settings
    # One engine for everything but the two below.
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # The pumps' own pool: their few fixed statements are planned once per connection.
    settle_engine: AsyncEngine
    # LISTEN's: one connection, never pooled (the listener drops it after use), on its own URL.
    listen_engine: AsyncEngine
    deliverer: Deliverer
    # arq's Redis and the worker itself (None outside an arq worker).
    redis: ArqRedis | None = None
    arq_worker: Worker | None = None
    subscription_index: SubscriptionIndex = field(default_factory=SubscriptionIndex)
    # This process's pump of each endpoint (`engine.pump_endpoint`).
    pumps: dict[str, EndpointPump] = field(default_factory=dict)
    listener: EventListener | None = None

    @property
    def accepting(self) -> bool:
        """Whether the worker takes new work: not once it shuts down (SIGTERM: finish what runs)."""
        return self.arq_worker is None or self.arq_worker.allow_pick_jobs


def worker_context(ctx: dict[str, Any]) -> WorkerContext:
    """The worker's context, from the `ctx` arq hands a job."""
    context = ctx[WORKER_CONTEXT]
    assert isinstance(context, WorkerContext), "the worker's start-up stores its context first"
    return context
