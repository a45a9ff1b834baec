"""Service configuration, read from `APPS_API_*` environment variables."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPS_API_", extra="ignore")

    # Unset means "use the embedded server of the state folder" (docs/design.md section 2).
    database_url: str | None = None
    redis_url: str | None = None
    state_dir: Path = Path(".apps-api")

    # Signs pagination cursors, web-flow session cookies and CSRF tokens. A random
    # per-process key is fine for one process; set it for several API processes.
    secret_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32))
    # AES-GCM keys of app secrets at rest, comma-separated URL-safe base64 of 32 bytes: the first
    # encrypts, all decrypt (kit/crypto.py). Embedded, one is generated in the state folder.
    encryption_keys: str | None = None
    # Absolute URLs (pagination links, install page) use the request's own host
    # unless this is set (behind a proxy that rewrites Host).
    public_base_url: str | None = None

    # Requests with larger bodies are refused with 413 before they are read whole.
    max_body_bytes: int = 1_048_576
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Seconds to open a PostgreSQL connection: past it, the request is a 503 with Retry-After
    # rather than a hung request.
    db_connect_timeout: float = 5.0
    # Prepared statements cached per connection (asyncpg's and SQLAlchemy's caches). 0 for
    # PgBouncer in transaction pooling mode: every statement is then unnamed and parsed again
    # at each execution, so none outlives its transaction or meets another client's.
    db_statement_cache_size: int = 100
    # `LISTEN` (the worker's, and each API process's for its principal cache) needs a session of
    # its own: a direct PostgreSQL URL (or a PgBouncer pool in session mode) when
    # APPS_API_DATABASE_URL goes through transaction pooling.
    listen_database_url: str | None = None
    # Each API process caches the principals of API tokens it saw (auth/principal_cache.py): at
    # most this many (least recently used go first), each for at most this many seconds. A
    # change anywhere empties every process's cache (NOTIFY), and the cache is off while its
    # LISTEN connection (on listen_database_url) is down. 0 seconds or 0 entries: no cache.
    principal_cache_size: int = Field(default=10_000, ge=0)
    principal_cache_seconds: float = Field(default=60.0, ge=0)
    # How often the LISTEN connection proves it is alive (a trivial query, answered within as
    # long): a connection whose server vanished without a word turns the cache off by then.
    principal_listen_ping_seconds: float = Field(default=5.0, gt=0)
    # Seconds a request waits for a pooled connection before it is answered 503.
    db_pool_timeout: float = 5.0
    # Requests in flight per API process; past it requests are answered 503 with Retry-After
    # at once (0: no bound). About the pool (size + overflow) times a few: more only queue on it.
    max_requests_in_flight: int = 64
    queue_name: str = "apps_api:queue"

    # Comma-separated CIDRs the SSRF guard lets outbound requests reach.
    outbound_allow_networks: str = ""
    webhook_log_retention_days: int = 7
    # Webhook and trigger delivery (docs/design.md section 8). Seconds between attempts, one
    # value per retry (with +-10 % jitter); after the last retry fails the delivery fails.
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_connect_timeout: float = 5.0
    webhook_timeout: float = 15.0
    # How long a worker owns an attempt; another worker takes over once it lapses.
    webhook_lease_seconds: float = 60.0
    # Concurrent attempts per endpoint (scheme://host:port) across all workers and apps, and of
    # one app there: one app fills at most its share, the others take turns in the rest.
    webhook_max_concurrency_per_endpoint: int = 20
    webhook_max_concurrency_per_app_endpoint: int = 10
    # How often the sweeper looks for undispatched events and due or stale deliveries.
    webhook_sweep_interval_seconds: int = 5
    # A webhook whose every attempt has failed for this many days, with at least
    # `webhook_disable_min_failures` failed attempts, is disabled (checked by the sweeper).
    webhook_disable_after_days: float = 5.0
    webhook_disable_min_failures: int = 10
    # The worker serves its delivery metrics (Prometheus) on this port when set.
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"
    # Service keys of the internal API (/internal/v1: event ingestion and the operator API),
    # comma-separated: any of them is accepted, so a new key can be added before the old one goes.
    service_keys: str | None = None
    # The former single ingestion key, still accepted beside service_keys.
    ingest_service_key: str | None = None
    # Prometheus scrapes the API's /metrics with `Authorization: Bearer <this>`; unset, /metrics
    # is a 404 for everyone (it shows status counts per route, failed logins among them).
    metrics_token: str | None = None

    # Password checks (argon2id, 19 MiB each) running at once per process; more wait up to
    # password_hash_wait_seconds for a slot, then get 503.
    password_hash_concurrency: int = 2
    password_hash_wait_seconds: float = 5.0

    log_level: str = "INFO"
    log_json: bool = False
    # FastAPI's own OpenTelemetry spans, metrics and logs (through the global providers, or OTLP
    # exporters from FASTAPI_OTEL_* variables). Off, FastAPI does not ask at every request whether
    # a provider is configured (about 2 % of a read's CPU, bench/ANALYSIS.md).
    opentelemetry: bool = False

    @field_validator(
        "database_url",
        "listen_database_url",
        "redis_url",
        "service_keys",
        "ingest_service_key",
        "metrics_token",
        "encryption_keys",
        "public_base_url",
        "worker_metrics_port",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def accepted_service_keys(self) -> tuple[str, ...]:
        """Every key the internal API accepts: APPS_API_SERVICE_KEYS, then the ingestion alias."""
        keys = [key.strip() for key in (self.service_keys or "").split(",") if key.strip()]
        if self.ingest_service_key:
            keys.append(self.ingest_service_key.strip())
        return tuple(keys)

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """The webhook retry schedule in seconds."""
        return tuple(float(item) for item in self.webhook_retry_schedule.split(",") if item.strip())

    @property
    def max_delivery_attempts(self) -> int:
        """Attempts of one delivery: the first, then one per retry delay."""
        return len(self.retry_delays) + 1

    @property
    def async_database_url(self) -> str:
        """The configured URL with SQLAlchemy's asyncpg driver selected."""
        if self.database_url is None:
            raise RuntimeError("database_url is not configured; call ensure_services() first")
        return to_asyncpg_url(self.database_url)


def to_asyncpg_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to postgresql+asyncpg://."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


@lru_cache
def get_settings() -> Settings:
    return Settings()
