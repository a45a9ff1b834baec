"""Prometheus metrics of the API process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "apps_api_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "apps_api_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
HTTP_SHED = Counter(
    "apps_api_http_requests_shed_total",
    "Requests answered 503 (with Retry-After) to shed load: `in_flight` (the process's bound was "
    "reached), `pool_timeout` (no database connection in time), `statement_timeout`.",
    ["reason"],
    registry=REGISTRY,
)

# The per-process cache of API token principals (auth/principal_cache.py).
PRINCIPAL_CACHE_LOOKUPS = Counter(
    "apps_api_principal_cache_lookups_total",
    "API token lookups while the principal cache is on: `hit` (no database round trip) or `miss`.",
    ["result"],
    registry=REGISTRY,
)
PRINCIPAL_CACHE_FLUSHES = Counter(
    "apps_api_principal_cache_flushes_total",
    "Times the principal cache was emptied: `notification` (a principal changed somewhere), `lost` "
    "(the LISTEN connection was lost: the cache is off until it is back), `listening` (LISTEN again).",
    ["reason"],
    registry=REGISTRY,
)
PRINCIPAL_CACHE_ON = Gauge(
    "apps_api_principal_cache_on",
    "1 while the principal cache serves lookups (its LISTEN connection is up), else 0.",
    registry=REGISTRY,
)
