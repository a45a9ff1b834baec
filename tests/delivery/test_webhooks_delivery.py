"""End to end: the real arq worker process delivers to real HTTP receivers on 127.0.0.1.

Data is committed (the worker is another process) in organizations of each test's own,
and deleted afterwards. Waits poll PostgreSQL or the receivers; nothing asserts durations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from standardwebhooks import Webhook as StandardWebhook

from apps_api.auth.access_tokens import decode_access_token
from apps_api.delivery.attempts import INTERRUPTED
from apps_api.delivery.matching import INSTALLATIONS_PATTERN
from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.embedded import start_redis
from apps_api.installations.service import uninstall
from apps_api.models import App, AppInstallation
from apps_api.settings import Settings
from tests.fixtures.delivery import World, chat_event, sub, verified
from tests.fixtures.webhooks import ROOT, Reply, cleanup, eventually, receivers, worker

pytestmark = pytest.mark.subprocess


async def test_a_change_reaches_exactly_the_subscribed_webhooks_signed(
    world: World, settings: Settings
) -> None:
    provider = await world.tenant("Provider")
    x, y, z = await world.tenant("X"), await world.tenant("Y"), await world.tenant("Z")
    app_a = await world.app(
        provider,
        name="A",
        is_app_user_required=True,
        app_user_default_first_name="Bot",
        app_user_default_last_name="A",
    )
    app_b = await world.app(provider, name="B")
    with receivers(None, None, None) as (r1, r2, r3), worker():
        await world.webhook(
            provider,
            app_a,
            r1.url,
            sub("/api/v5/orgs/{organization_id}/chats", removed=False),
            sub(INSTALLATIONS_PATTERN, changed=False, removed=False),
        )
        await world.webhook(
            provider, app_a, r2.url, sub("/api/v5/orgs/{organization_id}/users", added=False, changed=False)
        )
        await world.webhook(provider, app_b, r3.url, sub("/api/v5/orgs/{organization_id}/chats"))
        inst_x = await world.install(x, app_a, scopes=["reports", "users"])
        await world.install(y, app_a, scopes=[])
        await world.install(x, app_b, scopes=["reports"])
        await world.publish(
            chat_event(x.org_id, scope="users"),  # A in X (scope ok); not B (scope missing)
            chat_event(z.org_id),  # nothing installed in Z
            chat_event(y.org_id, action="removed"),  # A's flag for removals is off
            chat_event(x.org_id, action="changed", resource_id="chat-2"),  # A and B in X
        )
        await world.settle()

    bodies = verified(r1, app_a.secret)
    installations_channel = f"/api/v5/orgs/{provider.org_id}/owned_apps/{app_a.id}/installations"
    assert sorted((b["channel"], b["action"]) for b in bodies) == sorted(
        [
            (installations_channel, "added"),
            (installations_channel, "added"),
            (f"/api/v5/orgs/{x.org_id}/chats", "added"),
            (f"/api/v5/orgs/{x.org_id}/chats", "changed"),
        ]
    )
    chat = next(b for b in bodies if b["action"] == "added" and b["channel"].endswith("/chats"))
    assert chat["resource_id"] == "chat-1" and chat["resource"] == {"id": "chat-1", "topic": "hello"}
    assert set(chat) == {"channel", "action", "resource_id", "resource", "app_user_auth"}
    auth = chat["app_user_auth"]
    assert auth["token_type"] == "Bearer" and auth["user_id"] == str(inst_x.app_user_id)
    assert auth["organization_id"] == str(x.org_id) and auth["expires_in"] > 0
    claims = decode_access_token(auth["access_token"], secret_key=settings.secret_key)
    assert (
        claims is not None and claims["sub"] == str(inst_x.app_user_id) and claims["app_id"] == str(app_a.id)
    )
    # The owner's channel: each installation's own app user (point 3 of issue 12).
    owner_events = [b for b in bodies if b["channel"] == installations_channel]
    assert sorted(b["app_user_auth"]["user_id"] for b in owner_events) == sorted(
        b["resource"]["app_user_id"] for b in owner_events
    )
    assert all(
        b["app_user_auth"]["organization_id"] == b["resource"]["organization_id"] for b in owner_events
    )
    assert {b["resource"]["organization_id"] for b in owner_events} == {str(x.org_id), str(y.org_id)}
    assert r2.requests == []
    assert [(b["channel"], b["action"], b["resource_id"]) for b in verified(r3, app_b.secret)] == [
        (f"/api/v5/orgs/{x.org_id}/chats", "changed", "chat-2")
    ]
    # B's secret does not verify A's deliveries.
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(app_b.secret).verify(r1.requests[0].body, r1.requests[0].headers)
    log = await world.log(app_a.id)
    assert len(log) == 4 and {entry.status for entry in log} == {"successful"}
    assert {entry.response_status_code for entry in log} == {200} and all(e.duration is not None for e in log)
    assert {request.headers["webhook-id"] for request in r1.requests} == {
        d.message_id for d in await world.deliveries(app_a.id)
    }


async def test_retries_until_success_with_the_same_webhook_id(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    plan = [Reply(500, b"boom"), Reply(429, b"slow down", {"Retry-After": "1"}), Reply(200, b"thanks")]
    with receivers(lambda n: plan[min(n, 2)]) as (receiver,), worker():
        webhook_id = await world.webhook(
            provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats")
        )
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()

    assert len(receiver.requests) == 3
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1
    assert len({request.body for request in receiver.requests}) == 1
    verified(receiver, app.secret)
    log = await world.log(app.id)
    assert [(e.retry_index, e.status, e.response_status_code, e.response_body) for e in log] == [
        (0, "failed", 500, "boom"),
        (1, "failed", 429, "slow down"),
        (2, "successful", 200, "thanks"),
    ]
    assert log[0].reason == "Non-2xx response: 500." and log[2].reason is None
    assert log[1].response_headers is not None and log[1].response_headers["retry-after"] == "1"
    assert all(e.webhook_id == webhook_id and e.completed_at is not None for e in log)
    (delivery,) = await world.deliveries(app.id)
    assert delivery.status == "successful" and delivery.attempt_count == 3


async def test_gone_stops_retrying_and_exhausted_retries_fail(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with (
        receivers(
            lambda n: Reply(410, b"gone"), lambda n: Reply(302, b"", {"Location": "http://example.com/"})
        ) as (
            gone,
            redirect,
        ),
        worker(),
    ):
        await world.webhook(provider, app, gone.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.webhook(provider, app, redirect.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()
    assert len(gone.requests) == 1
    # Redirects are never followed; with 3 retries configured, 4 attempts then failed.
    assert len(redirect.requests) == 4
    deliveries = {d.endpoint_url: d for d in await world.deliveries(app.id)}
    assert deliveries[gone.url].status == "failed" and deliveries[gone.url].attempt_count == 1
    assert deliveries[redirect.url].status == "failed" and deliveries[redirect.url].attempt_count == 4
    reasons = {(e.endpoint_url, e.reason) for e in await world.log(app.id)}
    assert (gone.url, "Gone (410): the endpoint asked to stop; no more retries.") in reasons
    assert (redirect.url, "Redirect (302) not followed.") in reasons


async def test_ssrf_guard_blocks_loopback_when_the_allow_list_is_empty(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with (
        receivers(None) as (receiver,),
        worker(APPS_API_OUTBOUND_ALLOW_NETWORKS="", APPS_API_WEBHOOK_RETRY_SCHEDULE="0.2") as process,
    ):
        # A name, as a provider would probe how the service's names resolve.
        url = receiver.url.replace("127.0.0.1", "localhost")
        await world.webhook(provider, app, url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        await world.publish(chat_event(org.org_id))
        await world.settle()
        server_log = process.output()
    assert receiver.requests == []
    log = await world.log(app.id)
    assert [e.status for e in log] == ["failed", "failed"]
    # What the provider reads (API and console) names neither the host nor an address ...
    assert {e.reason for e in log} == {"Destination not allowed."}
    assert all(e.response_status_code is None for e in log)
    # ... the operator's log has the detail.
    assert "SSRF guard: localhost resolves to loopback address 127.0.0.1" in server_log


async def test_a_hanging_receiver_does_not_delay_other_endpoints(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with (
        receivers(lambda n: Reply(hang=True), None) as (hanging, fast),
        worker(APPS_API_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT="2", APPS_API_WEBHOOK_TIMEOUT="60"),
    ):
        await world.webhook(provider, app, hanging.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.webhook(provider, app, fast.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        await world.publish(*(chat_event(org.org_id, resource_id=f"chat-{i}") for i in range(6)))
        await eventually(lambda: len(fast.requests) == 6, what="the fast endpoint's deliveries")
        # Every fast delivery completed while the hanging endpoint still holds its requests open.
        assert hanging.in_flight == 2 and hanging.release.is_set() is False
        assert hanging.max_in_flight == 2 and len(hanging.requests) == 2
        hanging.release.set()
        await world.settle()
    assert len(hanging.requests) == 6 and hanging.max_in_flight <= 2
    assert sorted(json.loads(r.body)["resource_id"] for r in fast.requests) == [f"chat-{i}" for i in range(6)]


@pytest.mark.slow
async def test_worker_killed_mid_request_is_taken_over(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    # The lease lasts the timeout + 5 s at least: a short timeout (still far longer than the kill
    # takes after the first attempt arrives) makes the takeover come sooner.
    env = {"APPS_API_WEBHOOK_TIMEOUT": "2", "APPS_API_WEBHOOK_LEASE_SECONDS": "1"}
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        with worker(**env) as first:
            await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
            await world.install(org, app)
            await world.publish(chat_event(org.org_id))
            await eventually(lambda: len(receiver.requests) == 1, what="the first attempt")
            first.kill()
        with worker(**env):
            await world.settle()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    log = await world.log(app.id)
    assert [(e.retry_index, e.status, e.reason) for e in log] == [
        (0, "failed", INTERRUPTED),
        (1, "successful", None),
    ]


async def test_redis_restarted_empty_loses_nothing(engine: AsyncEngine, settings: Settings) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    state = Path(tempfile.mkdtemp(prefix="apps-api-redis-restart-"))
    redis_process, redis_url = start_redis(state)
    assert redis_process is not None
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=settings.queue_name)
    world = World(engine, pool, [], [])
    try:
        provider, org = await world.tenant("Provider"), await world.tenant("Org")
        app = await world.app(provider)
        with receivers(None) as (receiver,):
            await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
            await world.install(org, app)
            # No worker yet: the event is committed (PostgreSQL announces it; nothing waits in Redis)...
            await world.publish(chat_event(org.org_id, resource_id="before-restart"))
            # ...and Redis restarts empty (no persistence).
            redis_process.terminate()
            redis_process.wait(10)
            redis_process, _ = start_redis(state)
            fresh = await create_pool(RedisSettings.from_dsn(redis_url))
            assert await fresh.zcard(settings.queue_name) == 0
            await fresh.aclose()
            with worker(APPS_API_REDIS_URL=redis_url) as running:
                await eventually(lambda: len(receiver.requests) == 1, what="the delivery after the restart")
                # Redis restarts empty again while the worker runs; new work still flows.
                redis_process.terminate()
                redis_process.wait(10)
                redis_process, _ = start_redis(state)
                await world.publish(chat_event(org.org_id, resource_id="after-second-restart"))
                await world.settle()
                assert running.process.poll() is None, running.output()
        assert sorted(json.loads(r.body)["resource_id"] for r in receiver.requests) == [
            "after-second-restart",
            "before-restart",
        ]
    finally:
        await pool.aclose()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)
        await cleanup(engine, world.organization_ids, world.app_ids)


DIE_AFTER_COMMIT = """
import asyncio, os, signal, sys, uuid
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from apps_api.delivery.events import emit
from apps_api.kit.db import create_engine
from apps_api.settings import get_settings

async def main():
    # The service's own engine: its statement cache settings hold behind PgBouncer too.
    engine = create_engine(get_settings())
    async with AsyncSession(engine) as session:
        org = uuid.UUID(sys.argv[1])
        if len(sys.argv) > 2:
            # Triggers off for this transaction: its commit notifies nobody (a lost notification).
            await session.execute(text("SET LOCAL session_replication_role = replica"))
        await emit(session=session, organization_id=org, channel=f"/api/v5/orgs/{org}/chats",
                   action="added", resource_id="orphan", resource={"id": "orphan"},
                   required_scope="reports")
        await session.commit()
        # The API process dies right after its commit.
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.parametrize("notified", [True, False], ids=["notified", "notification-lost"])
async def test_api_process_dying_right_after_commit_is_delivered(world: World, notified: bool) -> None:
    """The commit's notification dispatches it at once; without one, the sweeper finds the event."""
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with receivers(None) as (receiver,), worker():
        await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        died = subprocess.run(
            [sys.executable, "-c", DIE_AFTER_COMMIT, str(org.org_id), *([] if notified else ["no-notify"])],
            env=dict(os.environ),
            cwd=ROOT,
            check=False,
        )
        assert died.returncode == -signal.SIGKILL
        await world.settle()
    assert [json.loads(r.body)["resource_id"] for r in receiver.requests] == ["orphan"]
    verified(receiver, app.secret)


async def test_two_workers_never_send_the_same_attempt(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(provider)
    with receivers(None) as (receiver,), worker(), worker():
        await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)
        await world.publish(*(chat_event(org.org_id, resource_id=f"chat-{i}") for i in range(40)))
        await world.settle()
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert receiver.max_concurrent_same_id == 1


async def test_uninstall_trigger_is_sent_even_after_the_app_is_deleted(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    with receivers(lambda n: Reply(503 if n == 0 else 200)) as (receiver,):
        app = await world.app(
            provider,
            trigger_conditions=["uninstall"],
            trigger_url=receiver.url.replace("/hook", "/trigger?x=1"),
        )
        installation = await world.install(org, app)

        async def uninstall_and_delete(session: AsyncSession) -> None:
            current = await session.get(AppInstallation, installation.id)
            assert current is not None
            await uninstall(session=session, installation=current, actor_user_id=org.user.id)
            await session.delete(await session.get(App, app.id))

        await world.run(uninstall_and_delete)
        with worker():
            await world.settle()

    assert [r.method for r in receiver.requests] == ["GET", "GET"]
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(receiver.requests[1].path)
    query = parse_qs(parts.query)
    assert parts.path == "/trigger" and query["x"] == ["1"] and query["type"] == ["uninstall"]
    claims = decode_trigger_data(query["data"][0], app_secret=app.secret)
    assert claims["app_id"] == str(app.id) and claims["org_id"] == str(org.org_id)
    assert claims["inst_id"] == str(installation.id) and claims["user_id"] == str(org.user.id)
    log = await world.log(app.id)
    assert [(e.retry_index, e.status, e.response_status_code, e.webhook_id) for e in log] == [
        (0, "failed", 503, None),
        (1, "successful", 200, None),
    ]
    assert log[0].channel == f"/api/v5/orgs/{provider.org_id}/owned_apps/{app.id}/installations"
    assert log[0].action == "removed" and log[0].resource_id == str(installation.id)
