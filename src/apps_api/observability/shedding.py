"""Overload is answered, not suffered: a bound on the requests in flight in this process.

Past `APPS_API_MAX_REQUESTS_IN_FLIGHT` a request is answered at once with a 503 and
`Retry-After`, before it costs a database connection, a parse or a log line: it is counted in
`apps_api_http_requests_shed_total{reason="in_flight"}`. Without the bound, a burst queues on
the connection pool until the pool wait runs out, and every admitted request gets slower.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from apps_api.kit.errors import OVERLOAD_RETRY_AFTER_SECONDS, OVERLOADED_DETAIL
from apps_api.observability.metrics import HTTP_SHED

# Answered however loaded the process is: probes and scrapes are cheap, and a readiness probe
# shed under load would take every busy instance out of the load balancer at once.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_BODY = json.dumps({"detail": OVERLOADED_DETAIL}).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"retry-after", str(OVERLOAD_RETRY_AFTER_SECONDS).encode()),
]


@functools.cache
def shed_counter(reason: str) -> Any:
    """The counter child of one reason (labels() validates and locks on every call)."""
    return HTTP_SHED.labels(reason)


def count_shed(reason: str) -> None:
    """Count one request shed for `reason` (the error handlers' pool and statement timeouts)."""
    shed_counter(reason).inc()


class LoadShedMiddleware:
    """Admits at most `limit` HTTP requests at once (0: no bound); answers the rest 503 at once."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0 or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            shed_counter("in_flight").inc()
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        # One event loop per process, and no await between the check and the increment.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
