"""Time migration 0004_scale (webhook_log_entries -> daily partitions) on a seeded database.

    python scripts/measure_partition_migration.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Creates a scratch database, migrates it to 0003, seeds `--rows` log entries (10 per delivery)
spread over the last 7 days, times the upgrade to 0004_scale, checks the rows, and drops the
database. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time

import asyncpg
from sqlalchemy.engine import make_url

from apps_api.migrate import upgrade
from apps_api.settings import to_asyncpg_url

SEED = """
INSERT INTO outbound_deliveries (id, kind, app_id, organization_id, method, endpoint_url, endpoint_host,
    channel, action, resource_id, payload, message_id, status, attempt_count, max_attempts,
    next_attempt_at, created_at, updated_at, completed_at)
SELECT md5('d' || n)::uuid, 'webhook', md5('a' || (n % 1000))::uuid, md5('o' || (n % 100))::uuid, 'POST',
    'https://hooks.example.com/x', 'https://hooks.example.com:443', '/api/v5/orgs/x/chats', 'added',
    'chat-' || n, '{}', 'msg_' || n, 'successful', 1, 8,
    now() - (n % 604800) * interval '1 second', now() - (n % 604800) * interval '1 second',
    now() - (n % 604800) * interval '1 second', now() - (n % 604800) * interval '1 second'
FROM generate_series(1, $1) AS n;
"""
SEED_ENTRIES = """
INSERT INTO webhook_log_entries (id, delivery_id, app_id, organization_id, webhook_id, endpoint_url, action,
    resource_id, channel, status, retry_index, response_status_code, response_body, duration,
    created_at, updated_at, scheduled_at, started_at, completed_at)
SELECT gen_random_uuid(), d.id, d.app_id, d.organization_id, NULL, d.endpoint_url, d.action, d.resource_id,
    d.channel, 'successful', r, 200, 'ok', 12,
    d.created_at + r * interval '1 second', d.created_at, d.created_at, d.created_at, d.created_at
FROM outbound_deliveries AS d, generate_series(0, 9) AS r;
"""


def _url(server: str, database: str) -> str:
    return make_url(to_asyncpg_url(server)).set(database=database).render_as_string(hide_password=False)


async def _admin(server: str, sql: str) -> None:
    connection = await asyncpg.connect(_url(server, "postgres").replace("+asyncpg", ""))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _seed(url: str, rows: int) -> None:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await connection.execute(SEED, rows // 10)
        await connection.execute(SEED_ENTRIES)
        await connection.execute("VACUUM ANALYZE webhook_log_entries")
    finally:
        await connection.close()


async def _count(url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        total = await connection.fetchval("SELECT count(*) FROM webhook_log_entries")
        in_default = await connection.fetchval("SELECT count(*) FROM webhook_log_entries_default")
        return int(total), int(in_default)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="a server URL (any database on it)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    name = f"apps_api_migration_{secrets.token_hex(4)}"
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    url = _url(args.database_url, name)
    try:
        upgrade(url, "0003")
        started = time.perf_counter()
        asyncio.run(_seed(url, args.rows))
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        upgrade(url, "0004_scale")
        migrated = time.perf_counter() - started
        total, in_default = asyncio.run(_count(url))
        print(
            json.dumps(
                {
                    "rows": total,
                    "in_default": in_default,
                    "seed_s": round(seeded, 1),
                    "migration_s": round(migrated, 1),
                }
            )
        )
    finally:
        asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
