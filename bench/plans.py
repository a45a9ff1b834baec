"""The query plans RESULTS.md ends with: EXPLAIN (ANALYZE, BUFFERS) of the hot queries."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import env, seed

# (title, SQL, its parameters)
Query = tuple[str, str, list[Any]]


async def explain_plans(services: env.Services) -> list[tuple[str, str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the hot queries, on the seeded data."""
    connection = await asyncpg.connect(services.asyncpg_url)
    try:
        queries = await _hot_queries(connection, services) + await _compiled_plans(connection)
        plans = []
        for title, sql, parameters in queries:
            # EXPLAIN ANALYZE runs the statement: writes are rolled back.
            transaction = connection.transaction()
            await transaction.start()
            try:
                rows = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *parameters)
            finally:
                await transaction.rollback()
            plans.append((title, "\n".join(r[0] for r in rows)))
        return plans
    finally:
        await connection.close()


async def _hot_queries(connection: asyncpg.Connection, services: env.Services) -> list[Query]:
    """The statements every request, page and delivery runs, with values of the seeded data."""
    from apps_api.delivery import dispatch, lease
    from apps_api.delivery.attempts import INTERRUPTED_LAST
    from bench.baseline import sql

    org, app = seed.org_id(0), seed.app_id(0)
    row = await connection.fetchrow(
        "SELECT created_at, id FROM webhook_log_entries WHERE app_id = $1 ORDER BY created_at DESC, id DESC "
        "OFFSET 9974 LIMIT 1",
        app,
    )
    # The log's reads stop at the retention the API runs with (env.Services.env()).
    retention = int(services.env()["APPS_API_WEBHOOK_LOG_RETENTION_DAYS"])
    kept_since = datetime.now(UTC) - timedelta(days=retention)
    return [
        (
            "Token lookup (every request)",
            sql.AUTH_SQL,
            [hashlib.sha256(seed.token_key(0).encode()).digest(), datetime.now(UTC)],
        ),
        ("owned_apps page 1", sql.OWNED_PAGE_SQL, [org, 26]),
        ("public_apps page 1", sql.PUBLIC_PAGE_SQL, [26]),
        ("webhook_log_entries page 1", sql.LOG_PAGE_SQL, [app, kept_since, 26]),
        (
            "webhook_log_entries page 400 (keyset, `previous` probe in the same statement)",
            sql.LOG_PAGE_AFTER_SQL,
            [app, kept_since, row["created_at"], row["id"], 26],
        ),
        (
            "Dispatcher: installations of the events' organizations",
            dispatch._INSTALLATIONS,
            # Removals kept for events whose snapshot predates them: none older than this.
            [[seed.org_id(5)], 2**63 - 1],
        ),
        (
            "Dispatcher: channel subscriptions of installed apps (matcher cache misses)",
            dispatch._MATCHER_ROWS,
            [[seed.app_id(n) for n in range(0, 500, 10)]],
        ),
        (
            "Worker: lease an endpoint's free slots and start their log entries (rolled back)",
            lease.LEASE,
            [
                "https://hooks.example.com:443",
                datetime.now(UTC),
                10,
                10,
                datetime.now(UTC),
                "bench-explain",
                INTERRUPTED_LAST,
                10,  # the bound per app at the endpoint
            ],
        ),
    ]


async def _compiled_plans(connection: asyncpg.Connection) -> list[Query]:
    """The ORM-built statements among the hot ones, compiled with their values inline."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from apps_api.delivery import maintenance as tasks
    from apps_api.webhooks.repository import delivery_stats

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's dialects are untyped

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    webhook = await connection.fetchval(
        "SELECT webhook_id FROM webhook_log_entries WHERE webhook_id IS NOT NULL "
        "AND created_at > now() - interval '1 day' LIMIT 1"
    )
    plans: list[Query] = []
    if webhook is not None:
        plans.append(
            (
                "Webhook view: delivery_stats over the last 24 h (one webhook of the seeded log)",
                sql(select(delivery_stats(webhook).label("stats"))),
                [],
            )
        )
    cutoff = datetime.now(UTC) - timedelta(days=7)
    for table, statement in tasks.purge_batches(cutoff):
        plans.append(
            (f"Purge: one batch of {table} past a 7-day retention (rolled back)", sql(statement), [])
        )
    return plans
