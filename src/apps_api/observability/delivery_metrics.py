"""Delivery metrics: outcomes and latency from the worker, queue depth from PostgreSQL.

- The worker counts what it does (attempt outcomes, attempt duration, end-to-end latency of
  successful deliveries) in its own registry, served on `APPS_API_WORKER_METRICS_PORT` when set
  (each worker process its own port; Prometheus sums them).
- The API's `/metrics` adds the state of the queue, read from PostgreSQL at scrape time with one
  query on the partial indexes of pending and leased deliveries (and one on undispatched
  events): due and scheduled deliveries, attempts in flight, the age of the oldest due delivery.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.observability.metrics import REGISTRY

logger = logging.getLogger(__name__)

# --- worker side ---------------------------------------------------------------------------------

WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
ATTEMPTS = Counter(
    "apps_api_delivery_attempts_total",
    "Delivery attempts (webhooks and triggers) by kind and outcome.",
    ["kind", "outcome"],
    registry=WORKER_REGISTRY,
)
ATTEMPT_DURATION = Histogram(
    "apps_api_delivery_attempt_duration_seconds",
    "Duration of one delivery attempt (the HTTP request), by kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0),
    registry=WORKER_REGISTRY,
)
DELIVERIES_FINISHED = Counter(
    "apps_api_deliveries_finished_total",
    "Deliveries that reached a final status (successful, or failed after retries or a 410).",
    ["kind", "status"],
    registry=WORKER_REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "apps_api_delivery_latency_seconds",
    "From the delivery's creation (the event's dispatch) to its successful attempt, retries included.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 86400.0),
    registry=WORKER_REGISTRY,
)

LOG_PARTITION_FAILURES = Counter(
    "apps_api_log_partition_maintenance_failures_total",
    "Failed runs of the hourly webhook log partition maintenance (creation ahead, retention).",
    registry=WORKER_REGISTRY,
)
LOG_PARTITIONS_AHEAD = Gauge(
    "apps_api_log_partitions_ahead_days",
    "Days after today whose webhook log partition exists (alert below 2).",
    registry=WORKER_REGISTRY,
)


def attempt_outcome(status_code: int | None, error: str | None) -> str:
    """A bounded label for one attempt: success, gone, redirect, http_4xx, http_5xx, error."""
    if error is not None or status_code is None:
        return "error"
    if 200 <= status_code < 300:
        return "success"
    if status_code == 410:
        return "gone"
    if 300 <= status_code < 400:
        return "redirect"
    return "http_4xx" if status_code < 500 else "http_5xx"


def observe_attempt(
    *,
    kind: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int | None,
    final_status: str,
    created_at: datetime,
    now: datetime,
) -> None:
    """Count one recorded attempt (called by the worker after the outcome is committed)."""
    ATTEMPTS.labels(kind, attempt_outcome(status_code, error)).inc()
    if duration_ms is not None:
        ATTEMPT_DURATION.labels(kind).observe(duration_ms / 1000)
    if final_status in ("successful", "failed"):
        DELIVERIES_FINISHED.labels(kind, final_status).inc()
    if final_status == "successful":
        DELIVERY_LATENCY.labels(kind).observe(max((now - created_at).total_seconds(), 0.0))


def start_worker_metrics_server(port: int | None, host: str) -> bool:
    """Serve the worker's metrics on host:port (nothing when port is unset)."""
    if not port:
        return False
    start_http_server(port, addr=host, registry=WORKER_REGISTRY)
    logger.info("worker metrics on http://%s:%s/metrics", host, port)
    return True


# --- API side: the queue, from PostgreSQL at scrape time ---------------------------------------

QUEUE_DELIVERIES = Gauge(
    "apps_api_deliveries_queued",
    "Deliveries waiting: `due` (their attempt is due now), `scheduled` (a later retry), "
    "`in_flight` (an attempt is being sent).",
    ["state"],
    registry=REGISTRY,
)
OLDEST_DUE_AGE = Gauge(
    "apps_api_oldest_due_delivery_age_seconds",
    "How long the oldest due attempt has been waiting (0 when none is due).",
    registry=REGISTRY,
)
UNDISPATCHED_EVENTS = Gauge(
    "apps_api_events_undispatched",
    "Events not yet matched to webhooks (the outbox).",
    registry=REGISTRY,
)
QUEUE_READ_OK = Gauge(
    "apps_api_queue_metrics_up",
    "1 when the last scrape could read the queue state from PostgreSQL.",
    registry=REGISTRY,
)

# The partial indexes ix_outbound_deliveries_due / _leased and ix_events_undispatched cover these.
_QUEUE_SQL = text(
    """
    SELECT
      (SELECT count(*) FROM outbound_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
      (SELECT count(*) FROM outbound_deliveries
        WHERE status = 'pending' AND next_attempt_at > now()) AS scheduled,
      (SELECT count(*) FROM outbound_deliveries WHERE status = 'started') AS in_flight,
      (SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0) FROM outbound_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()) AS oldest_due_age,
      (SELECT count(*) FROM events WHERE dispatched_at IS NULL) AS undispatched
    """
)


SCRAPE_TIMEOUT_SECONDS = 2.0


async def refresh_queue_metrics(engine: AsyncEngine) -> None:
    """Set the queue gauges from PostgreSQL; on failure mark them stale (never fail the scrape)."""
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS), engine.connect() as connection:
            row: Any = (await connection.execute(_QUEUE_SQL)).one()
    except Exception as exc:  # the scrape must answer even when PostgreSQL does not
        logger.warning("metrics: cannot read the queue state: %s", type(exc).__name__)
        QUEUE_READ_OK.set(0)
        return
    QUEUE_DELIVERIES.labels("due").set(row.due)
    QUEUE_DELIVERIES.labels("scheduled").set(row.scheduled)
    QUEUE_DELIVERIES.labels("in_flight").set(row.in_flight)
    OLDEST_DUE_AGE.set(float(row.oldest_due_age))
    UNDISPATCHED_EVENTS.set(row.undispatched)
    QUEUE_READ_OK.set(1)
