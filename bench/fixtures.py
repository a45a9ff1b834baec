"""Rows a benchmark run creates for itself (in `bench-run-*` organizations), events it publishes and
what the webhook receiver (bench/receiver.py) saw of them."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench import env
from bench.seed import RUN_PREFIX


@dataclass
class RunOrg:
    id: uuid.UUID
    user_id: uuid.UUID
    key: str

    @property
    def authorization(self) -> str:
        return f"Token {self.key}"


async def create_org(connection: asyncpg.Connection, label: str) -> RunOrg:
    """An organization with both features, an admin with every permission and an API token."""
    return (await create_orgs(connection, label, 1))[0]


async def create_orgs(connection: asyncpg.Connection, label: str, count: int) -> list[RunOrg]:
    """`count` organizations as `create_org()` makes one, in three statements."""
    orgs = [
        RunOrg(uuid.uuid4(), uuid.uuid4(), "bench_run_" + secrets.token_urlsafe(24)) for _ in range(count)
    ]
    org_ids, user_ids = [org.id for org in orgs], [org.user_id for org in orgs]
    async with connection.transaction():
        await connection.execute(
            "INSERT INTO organizations (id, name, subscription_active, features, created_at, updated_at) "
            "SELECT id, $2 || left(replace(id::text, '-', ''), 8), true, ARRAY['apps', 'app_provider'], "
            "now(), now() FROM unnest($1::uuid[]) AS id",
            org_ids,
            f"{RUN_PREFIX}{label}-",
        )
        await connection.execute(
            "INSERT INTO users (id, organization_id, first_name, last_name, is_bot, permissions, created_at, "
            "updated_at) SELECT id, org, 'Bench', 'Runner', false, ARRAY['settings', 'users', 'reports'], "
            "now(), now() FROM unnest($1::uuid[], $2::uuid[]) AS given (id, org)",
            user_ids,
            org_ids,
        )
        await connection.execute(
            "INSERT INTO api_tokens (id, user_id, key_digest, key_prefix, created_at) "
            "SELECT gen_random_uuid(), user_id, digest, left(key, 8), now() "
            "FROM unnest($1::uuid[], $2::bytea[], $3::text[]) AS given (user_id, digest, key)",
            user_ids,
            [hashlib.sha256(org.key.encode()).digest() for org in orgs],
            [org.key for org in orgs],
        )
    return orgs


async def create_apps(connection: asyncpg.Connection, org: RunOrg, count: int) -> list[uuid.UUID]:
    """`count` private apps owned by the organization (valid rows: secret, urls, timestamps)."""
    rows = await connection.fetch(
        """
        INSERT INTO apps (id, owned_by_organization_id, name, description, is_available_to_anyone, is_approved,
            is_available_to_partners, is_app_user_required, terms_of_service_url, privacy_policy_url,
            trigger_conditions, required_scopes, allowed_redirect_uris, installation_count, secret,
            created_by_user_id, updated_by_user_id, created_at, updated_at)
        SELECT gen_random_uuid(), $1, 'Run app ' || n, 'Created by a benchmark run.', false, false, false, false,
               'https://apps.example.com/terms', 'https://apps.example.com/privacy', '{}', '{}', '{}', 0,
               encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'), $2, $2,
               clock_timestamp() + n * interval '1 microsecond', clock_timestamp()
        FROM generate_series(1, $3) AS n
        RETURNING id
        """,
        org.id,
        org.user_id,
        count,
    )
    return [row["id"] for row in rows]


async def create_webhooked_apps(
    connection: asyncpg.Connection, org: RunOrg, count: int, endpoint_url: str
) -> list[uuid.UUID]:
    """`count` apps installed in their own organization, each with one webhook on its `chats` channel."""
    app_ids = await create_apps(connection, org, count)
    async with connection.transaction():
        for app_id in app_ids:
            webhook_id = uuid.uuid4()
            await connection.execute(
                "INSERT INTO webhooks (id, app_id, organization_id, endpoint_url, created_by_user_id, "
                "updated_by_user_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5, now(), now())",
                webhook_id,
                app_id,
                org.id,
                endpoint_url,
                org.user_id,
            )
            await connection.execute(
                "INSERT INTO webhook_channel_subscriptions (id, webhook_id, app_id, position, channel_pattern, "
                "is_additions_subscribed, is_changes_subscribed, is_removals_subscribed) "
                "VALUES ($1, $2, $3, 0, '/api/v5/orgs/{organization_id}/chats', true, true, true)",
                uuid.uuid4(),
                webhook_id,
                app_id,
            )
            await connection.execute(
                "INSERT INTO app_installations (id, app_id, organization_id, allowed_scopes, created_by_user_id, "
                "created_at, updated_at) VALUES ($1, $2, $3, '{reports}', $4, clock_timestamp(), clock_timestamp())",
                uuid.uuid4(),
                app_id,
                org.id,
                org.user_id,
            )
            await connection.execute("UPDATE apps SET installation_count = 1 WHERE id = $1", app_id)
    return app_ids


@dataclass
class Publisher:
    """What publishing events takes: a connection for fixtures, the service's engine and arq pool."""

    connection: asyncpg.Connection
    engine: AsyncEngine
    pool: ArqRedis


@asynccontextmanager
async def publisher(services: env.Services, *, pool_size: int) -> AsyncIterator[Publisher]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from apps_api.settings import to_asyncpg_url

    connection = await asyncpg.connect(services.asyncpg_url)
    engine = create_async_engine(to_asyncpg_url(services.database_url), pool_size=pool_size)
    pool = await create_pool(RedisSettings.from_dsn(services.redis_url), default_queue_name=env.QUEUE)
    try:
        yield Publisher(connection, engine, pool)
    finally:
        await pool.aclose()
        await engine.dispose()
        await connection.close()


async def publish(
    engine: AsyncEngine, pool: ArqRedis, org: RunOrg, resource_ids: list[str], resource: dict[str, Any]
) -> float:
    """Emit `chats` events in one transaction (the service's own `emit()`); returns the commit time."""
    from apps_api.delivery.events import emit
    from apps_api.kit.db import _AFTER_COMMIT_KEY
    from apps_api.kit.queue import current_arq

    token = current_arq.set(pool)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            for resource_id in resource_ids:
                await emit(
                    session=session,
                    organization_id=org.id,
                    channel=f"/api/v5/orgs/{org.id}/chats",
                    action="added",
                    resource_id=resource_id,
                    resource={**resource, "id": resource_id},
                    # Chats are heard by installations granted `reports` (as giosg's chat events).
                    required_scope="reports",
                )
            await session.commit()
            committed = time.time()
            # The after-commit hooks: enqueue the dispatch job, as a request would.
            for callback in session.info.pop(_AFTER_COMMIT_KEY, []):
                await callback()
    finally:
        current_arq.reset(token)
    return committed


async def wait_for(check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return False


async def receiver_stats(receiver: str, detail: bool = False) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{receiver}/stats" + ("?detail=1" if detail else ""))
        return dict(response.json())


async def receiver_reset(receiver: str, track: bool = False) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{receiver}/reset" + ("?track=1" if track else ""))
