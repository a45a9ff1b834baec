"""Enqueue arq jobs after commit, from any code path that only holds a session.

The request's arq pool (`app.state.arq`) is published in a context variable by
`QueueContextMiddleware`; the worker publishes its own. Enqueueing is only the fast path:
every job this service enqueues is also found by a sweeper in PostgreSQL, so a missing
pool (CLI, Redis down) delays work by a few seconds and loses none.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from apps_api.kit.db import after_commit

logger = logging.getLogger(__name__)

current_arq: contextvars.ContextVar[Any | None] = contextvars.ContextVar("apps_api_arq", default=None)


async def enqueue(pool: Any | None, function: str, *args: Any, **options: Any) -> bool:
    """Enqueue one job; False (logged, never raised) without a pool or Redis."""
    if pool is None:
        return False
    try:
        await pool.enqueue_job(function, *args, **options)
    except Exception:  # Redis down: the sweeper will find the work in PostgreSQL.
        logger.warning("could not enqueue %s; the sweeper will pick it up", function, exc_info=True)
        return False
    return True


def enqueue_after_commit(session: AsyncSession, function: str, *args: Any, **options: Any) -> None:
    """Enqueue `function(*args)` once the session's transaction has committed."""
    pool = current_arq.get()

    async def _enqueue() -> None:
        await enqueue(pool, function, *args, **options)

    after_commit(session, _enqueue)


class QueueContextMiddleware:
    """Publishes the application's arq pool (`app.state.arq`) to the request's context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        application = scope.get("app")
        pool = getattr(getattr(application, "state", None), "arq", None)
        token = current_arq.set(pool)
        try:
            await self.app(scope, receive, send)
        finally:
            current_arq.reset(token)
