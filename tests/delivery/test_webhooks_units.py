"""Delivery building blocks: signatures, the SSRF guard, retry planning, the lease race and the pump."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from asyncpg.connection import LoggedQuery
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from standardwebhooks import Webhook as StandardWebhook

from apps_api.delivery import engine as engine_module
from apps_api.delivery import record
from apps_api.delivery.attempts import INTERRUPTED, Deliverer
from apps_api.delivery.context import WorkerContext
from apps_api.delivery.engine import EndpointPump, settle
from apps_api.delivery.outbox import build_delivery, deliver_job_id, endpoint_host
from apps_api.delivery.retry import MAX_RETRY_AFTER_SECONDS, classify, plan_next, retry_after_seconds
from apps_api.delivery.send import send_attempt
from apps_api.delivery.signing import signature_headers
from apps_api.kit.db import statement_cache_options
from apps_api.kit.security import new_app_secret
from apps_api.models import App, OutboundDelivery, WebhookLogEntry
from apps_api.outbound.client import DESTINATION_NOT_ALLOWED, Outcome, guarded_client, send
from apps_api.outbound.guard import DestinationBlocked, parse_networks, refusal_reason, resolve_checked
from apps_api.settings import Settings
from tests.fixtures.delivery import CHATS, World, sub, verified
from tests.fixtures.webhooks import Reply, eventually, receivers


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = new_app_secret()
    body = json.dumps({"channel": "/api/v5/orgs/x/chats", "action": "added"}).encode()
    headers = signature_headers(
        secret=secret, message_id="msg_1", timestamp=int(datetime.now(UTC).timestamp()), body=body
    )
    assert StandardWebhook(secret).verify(body, headers)["action"] == "added"
    assert StandardWebhook("whsec_" + secret).verify(body, headers)["action"] == "added"
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(new_app_secret()).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(secret).verify(body + b" ", headers)


def test_a_rotation_signs_with_both_secrets_and_never_twice_with_one() -> None:
    low, high = sorted((new_app_secret(), new_app_secret()))
    moment = int(datetime.now(UTC).timestamp())
    # Both orders: a previous secret that sorts before the new one or after it.
    for secret, previous in ((high, low), (low, high)):
        both = signature_headers(
            secret=secret, message_id="msg_2", timestamp=moment, body=b"{}", previous_secret=previous
        )
        signatures = both["webhook-signature"].split(" ")
        assert len(signatures) == 2
        for key in (secret, previous):
            assert StandardWebhook(key).verify(b"{}", both) == {}
    # The same secret as "previous" (a rotation to itself) adds no second, identical signature.
    same = signature_headers(
        secret=secret, message_id="msg_2", timestamp=moment, body=b"{}", previous_secret=secret
    )
    assert same["webhook-signature"] == signatures[0]


@pytest.mark.parametrize(
    "secret",
    ["a", "sécret"],  # one base64 character too many; not ASCII (base64's ValueError, not its Error)
)
def test_a_secret_that_is_not_base64_keys_the_signature_with_its_own_bytes(secret: str) -> None:
    headers = signature_headers(secret=secret, message_id="msg_3", timestamp=1_700_000_000, body=b"{}")
    digest = hmac.new(secret.encode(), b"msg_3.1700000000.{}", hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fd00::1", "private"),
    ],
)
def test_guard_refuses_non_public_addresses(address: str, label: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(label), reason


def test_guard_allows_public_addresses_and_the_allow_list() -> None:
    assert refusal_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal_reason(ipaddress.ip_address("2606:2800:220:1::1")) is None
    allow = parse_networks("127.0.0.0/8, 10.0.0.5")
    assert refusal_reason(ipaddress.ip_address("127.0.0.9"), allow) is None
    assert refusal_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allow) is None
    assert refusal_reason(ipaddress.ip_address("10.0.0.5"), allow) is None
    assert refusal_reason(ipaddress.ip_address("10.0.0.6"), allow) is not None


async def test_guard_resolves_names_and_refuses_them() -> None:
    with pytest.raises(DestinationBlocked, match="localhost resolves to loopback"):
        await resolve_checked("localhost", 80)
    assert await resolve_checked("localhost", 80, parse_networks("127.0.0.0/8")) == "127.0.0.1"


async def test_guarded_client_reads_at_most_4_kib_and_never_follows_redirects() -> None:
    big = b"x" * 1_000_000
    with receivers(
        lambda n: Reply(200, big), lambda n: Reply(301, b"", {"Location": "http://127.0.0.1:1/"})
    ) as (
        large,
        moved,
    ):
        async with guarded_client(parse_networks("127.0.0.0/8")) as client:
            outcome = await send(client, method="POST", url=large.url, headers={}, content=b"{}")
            assert outcome.status_code == 200 and outcome.body == "x" * 4096
            assert outcome.headers is not None and outcome.headers["content-length"] == str(len(big))
            redirect = await send(client, method="POST", url=moved.url, headers={}, content=b"{}")
            assert redirect.status_code == 301 and len(moved.requests) == 1
        async with guarded_client(()) as closed:
            blocked = await send(closed, method="POST", url=large.url, headers={}, content=b"{}")
            assert blocked.status_code is None and blocked.error == DESTINATION_NOT_ALLOWED
        assert len(large.requests) == 1


def test_retry_plan(settings: Settings) -> None:
    now = datetime.now(UTC)
    schedule = settings.model_copy(update={"webhook_retry_schedule": "5,300,1800"})
    ok = plan_next(settings=schedule, attempt_count=1, max_attempts=4, outcome=Outcome(200), now=now)
    assert ok.status == "successful"
    first = plan_next(settings=schedule, attempt_count=1, max_attempts=4, outcome=Outcome(500), now=now)
    assert first.status == "pending" and first.delay is not None and 4.5 <= first.delay <= 5.5
    second = plan_next(
        settings=schedule, attempt_count=2, max_attempts=4, outcome=Outcome(error="x"), now=now
    )
    assert second.delay is not None and 270 <= second.delay <= 330
    last = plan_next(settings=schedule, attempt_count=4, max_attempts=4, outcome=Outcome(500), now=now)
    assert last.status == "failed"
    gone = plan_next(settings=schedule, attempt_count=1, max_attempts=4, outcome=Outcome(410), now=now)
    assert gone.status == "failed"
    throttled = Outcome(429, headers={"retry-after": "120"})
    assert (
        plan_next(settings=schedule, attempt_count=1, max_attempts=4, outcome=throttled, now=now).delay == 120
    )
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    unavailable = Outcome(503, headers={"retry-after": later})
    delay = plan_next(settings=schedule, attempt_count=1, max_attempts=4, outcome=unavailable, now=now).delay
    assert delay is not None and 85 <= delay <= 91
    assert retry_after_seconds("soon", now) is None
    # A receiver cannot push a retry out by decades: Retry-After is capped (a day).
    for huge in ("999999999", "Fri, 01 Jan 2100 00:00:00 GMT"):
        pushed = Outcome(503, headers={"retry-after": huge})
        capped = plan_next(settings=schedule, attempt_count=1, max_attempts=4, outcome=pushed, now=now)
        assert capped.delay == MAX_RETRY_AFTER_SECONDS == 24 * 3600, huge
        assert capped.next_attempt_at == now + timedelta(days=1)


async def test_outbound_requests_keep_no_cookies() -> None:
    """A cookie one endpoint sets must never reach another app's endpoint on the same host."""
    cookie = {"Set-Cookie": "session=tenant-a-secret; Path=/"}
    with receivers(lambda n: Reply(200, b"ok", cookie)) as (receiver,):
        async with guarded_client(parse_networks("127.0.0.0/8")) as client:
            for _ in range(2):
                outcome = await send(client, method="POST", url=receiver.url, headers={}, content=b"{}")
                assert outcome.status_code == 200
    assert len(receiver.requests) == 2
    assert all("cookie" not in {name.lower() for name in request.headers} for request in receiver.requests)


async def test_concurrent_leases_give_one_attempt_to_one_worker(
    engine: AsyncEngine, settings: Settings
) -> None:
    # A trigger: a webhook attempt is leased only while its webhook exists
    # (tests/webhooks/test_follow_webhook.py).
    delivery, entry = build_delivery(
        kind="trigger",
        app_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        method="POST",
        endpoint_url="http://127.0.0.1:9/race",
        channel="/api/v5/orgs/x/chats",
        action="added",
        resource_id="r",
        payload={},
    )
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    async with sessionmaker() as session, session.begin():
        session.add(delivery)
        await session.flush()
        session.add(entry)
    try:
        async with guarded_client(()) as client:
            deliverers = [Deliverer(sessionmaker, settings, client, f"worker-{i}") for i in range(8)]
            host = delivery.endpoint_host
            results = await asyncio.gather(*(settle(d, host=host, wanted=10) for d in deliverers))
        winners = [attempts for _, attempts, _ in results if attempts]
        assert len(winners) == 1 and len(winners[0]) == 1
        leased = winners[0][0]
        assert leased.id == delivery.id and leased.attempt_count == 1 and leased.log_entry_id == entry.id
        async with sessionmaker() as session:
            stored = await session.get(OutboundDelivery, delivery.id)
            assert stored is not None and stored.status == "started"
            assert stored.locked_by in {d.worker_id for d in deliverers}
            stored_entry = await session.get(WebhookLogEntry, entry.id)
            assert stored_entry is not None and stored_entry.status == "started"
    finally:
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(delete(OutboundDelivery).where(OutboundDelivery.id == delivery.id))


async def _queued(
    sessionmaker: async_sessionmaker[AsyncSession], url: str, count: int, app_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """`count` due deliveries of one app to `url`, oldest first: (delivery id, log entry id) each.

    One app: an endpoint's apps take turns, so only one app's attempts go strictly oldest first.
    """
    queued = []
    app_id = app_id or uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        for n in range(count):
            delivery, entry = build_delivery(
                kind="trigger",  # a webhook's would wait for its webhook
                app_id=app_id,
                organization_id=uuid.uuid4(),
                method="POST",
                endpoint_url=url,
                channel="/api/v5/orgs/x/chats",
                action="added",
                resource_id=f"r{n}",
                payload={},
            )
            delivery.next_attempt_at = datetime.now(UTC) - timedelta(seconds=60 - n)
            session.add(delivery)
            await session.flush()
            session.add(entry)
            queued.append((delivery.id, entry.id))
    return queued


async def _forget_deliveries(engine: AsyncEngine, ids: Iterable[uuid.UUID]) -> None:
    """Delete a test's deliveries (their log entries go with them)."""
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(delete(OutboundDelivery).where(OutboundDelivery.id.in_(list(ids))))


async def _live_leases(engine: AsyncEngine, host: str) -> int:
    async with AsyncSession(engine) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboundDelivery)
            .where(
                OutboundDelivery.endpoint_host == host,
                OutboundDelivery.status == "started",
                OutboundDelivery.locked_until > func.now(),
            )
        )
    return int(count or 0)


async def test_a_finished_attempt_passes_its_slot_and_the_bound_holds(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Recording an outcome leases into the slot it frees (one statement, no lock): only a slot
    whose lease was still live passes on, so the endpoint's bound holds across workers."""
    bounded = settings.model_copy(update={"webhook_max_concurrency_per_endpoint": 2})
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/pass"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 7)]
    host = endpoint_host(url)
    ok = Outcome(status_code=200, body="ok")
    try:
        async with guarded_client(()) as client:
            a, b, c = (Deliverer(sessionmaker, bounded, client, f"worker-{name}") for name in "abc")
            _, first, _ = await settle(a, host=host, wanted=2)
            assert [attempt.id for attempt in first] == ids[:2]
            assert (await settle(b, host=host, wanted=2))[1] == []  # the bound is full
            # a's second lease lapses while a records it (its row locked), so b counts a free slot
            # and leases the next due attempt into it.
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    update(OutboundDelivery)
                    .where(OutboundDelivery.id == ids[1])
                    .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
                )
            async with engine.connect() as recording:
                await recording.execute(
                    select(OutboundDelivery.id).where(OutboundDelivery.id == ids[1]).with_for_update()
                )
                _, taken, _ = await settle(b, host=host, wanted=2)
                await recording.rollback()
            assert [attempt.id for attempt in taken] == [ids[2]]
            # a finishes both, still its own: only the slot whose lease was live passes on.
            finished = [(first[0], ok), (first[1], ok)]
            plans, passed, more = await settle(a, host=host, results=finished, wanted=2)
            assert [plan and plan.status for plan in plans] == ["successful", "successful"]
            assert [attempt.id for attempt in passed] == [ids[3]] and more
            assert await _live_leases(engine, host) == 2
            # Both finish while a third worker counts free slots: never more than the bound.
            outcomes = await asyncio.gather(
                settle(a, host=host, results=[(passed[0], ok)], wanted=1),
                settle(b, host=host, results=[(taken[0], ok)], wanted=1),
                settle(c, host=host, wanted=2),
            )
            assert sum(len(leased) for _, leased, _ in outcomes) == 2
            assert await _live_leases(engine, host) == 2
        async with sessionmaker() as session:
            rows = await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.status).where(OutboundDelivery.id.in_(ids))
            )
            statuses = dict(rows.all())
        assert [statuses[i] for i in ids] == ["successful"] * 4 + ["started"] * 2 + ["pending"]
    finally:
        await _forget_deliveries(engine, ids)


async def test_a_passed_slot_takes_over_an_abandoned_attempt_first(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A slot passed in the recording statement goes to a lapsed attempt before a due one; the
    dead worker's started log entry ends "Interrupted" and the new attempt gets its own."""
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/abandoned"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    queued = await _queued(sessionmaker, url, 3)
    ids, entries = [delivery_id for delivery_id, _ in queued], [entry_id for _, entry_id in queued]
    host = endpoint_host(url)
    try:
        async with guarded_client(()) as client:
            dead, a = (Deliverer(sessionmaker, settings, client, f"worker-{name}") for name in ("dead", "a"))
            assert [attempt.id for attempt in (await settle(dead, host=host, wanted=1))[1]] == [ids[0]]
            _, mine, _ = await settle(a, host=host, wanted=1)
            assert [attempt.id for attempt in mine] == [ids[1]]
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    update(OutboundDelivery)
                    .where(OutboundDelivery.id == ids[0])
                    .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
                )
            _, passed, _ = await settle(a, host=host, results=[(mine[0], Outcome(status_code=200))], wanted=1)
        assert [(attempt.id, attempt.attempt_count) for attempt in passed] == [(ids[0], 2)]
        assert passed[0].log_entry_id not in (None, entries[0])
        async with sessionmaker() as session:
            old = await session.get(WebhookLogEntry, entries[0])
            new = await session.get(WebhookLogEntry, passed[0].log_entry_id)
            stored = await session.get(OutboundDelivery, ids[0])
        assert old is not None and (old.status, old.reason) == ("failed", INTERRUPTED)
        assert new is not None and (new.status, new.retry_index) == ("started", 1)
        assert stored is not None and stored.current_log_entry_id == new.id and stored.locked_by == "worker-a"
    finally:
        await _forget_deliveries(engine, ids)


def test_a_redirect_delivers_a_trigger_not_a_webhook() -> None:
    from apps_api.delivery.retry import classify

    assert classify(Outcome(302)) == (False, "Redirect (302) not followed.")
    assert classify(Outcome(302), redirect_delivers=True) == (True, None)
    assert classify(Outcome(500), redirect_delivers=True)[0] is False


# A webhook delivers on 2xx only; a trigger (a page) on 3xx too. 410 stops retrying; every
# other failure is retried. The reason is what the log entry shows the app's owner.
_NOT_FOLLOWED = "Redirect ({}) not followed."
_GONE = "Gone (410): the endpoint asked to stop; no more retries."
_NON_2XX = "Non-2xx response: {}."


@pytest.mark.parametrize(
    ("code", "trigger", "reason"),
    [
        *[(code, False, None) for code in (200, 201, 204, 299)],
        *[(code, False, _NOT_FOLLOWED.format(code)) for code in (300, 301, 302, 399)],
        *[(code, False, _NON_2XX.format(code)) for code in (400, 401, 404, 409, 411, 429, 500, 503)],
        (410, False, _GONE),
        *[(code, True, None) for code in (200, 201, 299, 300, 301, 302, 399)],
        *[(code, True, _NON_2XX.format(code)) for code in (400, 401, 409, 411, 500)],
        (410, True, _GONE),
    ],
)
def test_an_answer_is_delivered_failed_or_retried_by_its_status_code(
    settings: Settings, code: int, trigger: bool, reason: str | None
) -> None:
    assert classify(Outcome(code), redirect_delivers=trigger) == (reason is None, reason)
    plan = plan_next(
        settings=settings,
        attempt_count=1,
        max_attempts=4,
        outcome=Outcome(code),
        now=datetime.now(UTC),
        redirect_delivers=trigger,
    )
    expected = "successful" if reason is None else "failed" if code == 410 else "pending"
    assert plan.status == expected


def test_retry_after_dates_count_in_their_own_zone_and_a_past_one_waits_a_second(
    settings: Settings,
) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def waited(code: int, retry_after: str) -> float:
        outcome = Outcome(code, headers={"retry-after": retry_after})
        plan = plan_next(settings=settings, attempt_count=1, max_attempts=4, outcome=outcome, now=now)
        assert plan.status == "pending" and plan.delay is not None
        assert plan.next_attempt_at == now + timedelta(seconds=plan.delay)
        return plan.delay

    # One moment, 90 s ahead, in three spellings: "-0000" (RFC 5322's "UTC, origin unknown") parses
    # to a naive datetime, "+0200" to another zone's clock.
    for moment in (
        "Mon, 07 Dec 2026 12:01:30 GMT",
        "Mon, 07 Dec 2026 12:01:30 -0000",
        "Mon, 07 Dec 2026 14:01:30 +0200",
    ):
        assert waited(503, moment) == 90.0, moment
    # "Now" or a moment already past: the retry still waits a second, never hammers the receiver.
    for due in ("0", "Mon, 07 Dec 2026 11:00:00 GMT", "Mon, 07 Dec 2026 11:59:59 +0000"):
        assert waited(429, due) == 1.0, due


@pytest.mark.parametrize(
    ("schedule", "attempt_count", "max_attempts", "base"),
    [
        ("5,300,1800", 1, 4, 5.0),
        ("5,300,1800", 2, 4, 300.0),
        ("5,300,1800", 3, 4, 1800.0),
        # A delivery keeps the max_attempts of the schedule it was created under: after a deploy
        # that shortens the schedule, its further retries wait the new schedule's last delay...
        ("5,300,1800", 5, 8, 1800.0),
        # ...and 5 s when the schedule was emptied.
        ("", 1, 8, 5.0),
    ],
)
def test_retries_wait_their_delay_of_the_schedule_within_10_percent_jitter(
    settings: Settings, schedule: str, attempt_count: int, max_attempts: int, base: float
) -> None:
    configured = settings.model_copy(update={"webhook_retry_schedule": schedule})
    now = datetime.now(UTC)
    delays = []
    for _ in range(300):
        plan = plan_next(
            settings=configured,
            attempt_count=attempt_count,
            max_attempts=max_attempts,
            outcome=Outcome(500),
            now=now,
        )
        assert plan.status == "pending" and plan.delay is not None
        delays.append(plan.delay)
    # Within ±10 % (docs/configuration.md), and spread over that range so that retries of many
    # deliveries failed at once do not all come back at the same moment.
    low, high = min(delays), max(delays)
    assert base * 0.9 <= low < base * 0.95 and base * 1.05 < high <= base * 1.1, (low, high)


async def _live_by_app(engine: AsyncEngine, host: str) -> dict[uuid.UUID, int]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(OutboundDelivery.app_id, func.count())
            .where(
                OutboundDelivery.endpoint_host == host,
                OutboundDelivery.status == "started",
                OutboundDelivery.locked_until > func.now(),
            )
            .group_by(OutboundDelivery.app_id)
        )
    return {app_id: int(count) for app_id, count in rows.all()}


async def test_apps_take_turns_within_both_bounds_across_workers(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Issue 24: at most 2 attempts of one app and 3 in all at one endpoint, across three workers
    counting and passing slots at once; a finished attempt's slot goes to the other app first."""
    bounded = settings.model_copy(
        update={"webhook_max_concurrency_per_endpoint": 3, "webhook_max_concurrency_per_app_endpoint": 2}
    )
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/turns"
    host = endpoint_host(url)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    first_app, second_app = uuid.uuid4(), uuid.uuid4()
    ids = [d for d, _ in await _queued(sessionmaker, url, 12, first_app)]
    ids += [d for d, _ in await _queued(sessionmaker, url, 12, second_app)]
    async with sessionmaker() as session, session.begin():
        # The first app's whole backlog was due first: strict time order would serve it alone.
        await session.execute(
            update(OutboundDelivery)
            .where(OutboundDelivery.app_id == second_app)
            .values(next_attempt_at=OutboundDelivery.next_attempt_at + timedelta(seconds=30))
        )
    ok = Outcome(status_code=200, body="ok")
    try:
        async with guarded_client(()) as client:
            a, b, c = (Deliverer(sessionmaker, bounded, client, f"worker-{name}") for name in "abc")
            _, first, more = await settle(a, host=host, wanted=3)
            assert more  # attempts wait for their app's slot
            counts = await _live_by_app(engine, host)
            assert sorted(counts.values()) == [1, 2]
            assert (await settle(b, host=host, wanted=3))[1] == []  # the endpoint's bound is full
            # The app holding two finishes one: its slot passes to the other app, under its bound.
            full = next(app_id for app_id, count in counts.items() if count == 2)
            done = next(attempt for attempt in first if attempt.app_id == full)
            _, passed, _ = await settle(a, host=host, results=[(done, ok)], wanted=1)
            assert [attempt.app_id for attempt in passed] == [next(iter(set(counts) - {full}))]
            held = {"a": [attempt for attempt in first if attempt is not done] + passed, "b": [], "c": []}
            workers = {"a": a, "b": b, "c": c}
            # Rounds of three workers at once, each recording what it holds and taking what it can.
            for _ in range(12):
                outcomes = await asyncio.gather(
                    *(
                        settle(workers[name], host=host, results=[(held[name][0], ok)], wanted=1)
                        if held[name]
                        else settle(workers[name], host=host, wanted=3)
                        for name in "abc"
                    )
                )
                for name, (_, leased, _) in zip("abc", outcomes, strict=True):
                    held[name] = held[name][1:] + leased
                live = await _live_by_app(engine, host)
                assert sum(live.values()) <= 3 and max(live.values(), default=0) <= 2, live
                assert sum(map(len, held.values())) == sum(live.values())
        async with sessionmaker() as session:
            rows = await session.execute(
                select(OutboundDelivery.app_id, func.count())
                .where(OutboundDelivery.id.in_(ids), OutboundDelivery.status == "successful")
                .group_by(OutboundDelivery.app_id)
            )
            served = dict(rows.all())
        # Both apps were served all along, neither ran ahead of the other by more than its bound.
        assert abs(served.get(first_app, 0) - served.get(second_app, 0)) <= 2, served
    finally:
        await _forget_deliveries(engine, ids)


async def test_a_lease_says_more_may_be_due_only_when_it_filled_its_slots(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A lease that comes back short of its free slots (nothing blocked) says nothing more is
    due, so the pump stops leasing until a poke; one that fills them says more may be."""
    roomy = settings.model_copy(
        update={"webhook_max_concurrency_per_endpoint": 5, "webhook_max_concurrency_per_app_endpoint": 5}
    )
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/short"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 3)]
    host = endpoint_host(url)
    try:
        async with guarded_client(()) as client:
            a = Deliverer(sessionmaker, roomy, client, "worker-a")
            _, full, more = await settle(a, host=host, wanted=2)
            assert [attempt.id for attempt in full] == ids[:2] and more
            _, short, more = await settle(a, host=host, wanted=3)
            assert [attempt.id for attempt in short] == ids[2:] and not more
            _, empty, more = await settle(a, host=host, wanted=1)
            assert empty == [] and not more
            # The same when a finished attempt passes its slot on (one statement, no lock).
            _, passed, more = await settle(
                a, host=host, results=[(full[0], Outcome(status_code=200))], wanted=1
            )
            assert passed == [] and not more
    finally:
        await _forget_deliveries(engine, ids)


# The pump (`engine.EndpointPump`) in this process, with a worker's context on the run's database
# and Redis: what it sends, records and enqueues.


@asynccontextmanager
async def _pump_context(
    engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> AsyncIterator[WorkerContext]:
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    async with guarded_client(parse_networks(settings.outbound_allow_networks)) as client:
        deliverer = Deliverer(sessionmaker, settings, client, f"worker-{uuid.uuid4().hex[:8]}")
        yield WorkerContext(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            settle_engine=engine,
            listen_engine=engine,
            deliverer=deliverer,
            redis=arq_pool,
        )


@dataclass
class _Endpoint:
    """A webhook of an app of its own at `url` (committed: `world` deletes it)."""

    url: str
    app_id: uuid.UUID
    organization_id: uuid.UUID
    webhook_id: uuid.UUID

    @property
    def host(self) -> str:
        return endpoint_host(self.url)


async def _endpoint(world: World, url: str) -> _Endpoint:
    provider = await world.tenant("Provider")
    app = await world.app(provider)
    webhook_id = await world.webhook(provider, app, url, sub(CHATS))
    return _Endpoint(url, app.id, provider.org_id, webhook_id)


async def _due(engine: AsyncEngine, endpoint: _Endpoint, count: int = 1) -> list[uuid.UUID]:
    """`count` deliveries due now to the endpoint's webhook, committed; no job is enqueued for them."""
    ids = []
    async with AsyncSession(engine) as session, session.begin():
        for n in range(count):
            delivery, entry = build_delivery(
                kind="webhook",
                app_id=endpoint.app_id,
                organization_id=endpoint.organization_id,
                webhook_id=endpoint.webhook_id,
                method="POST",
                endpoint_url=endpoint.url,
                channel=CHATS,
                action="added",
                resource_id=f"r{n}",
                payload={"n": n},
            )
            session.add(delivery)
            await session.flush()
            session.add(entry)
            ids.append(delivery.id)
    return ids


async def _statuses(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[str]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(OutboundDelivery.id, OutboundDelivery.status).where(OutboundDelivery.id.in_(ids))
        )
        statuses = dict(rows.all())
    return [statuses[i] for i in ids]


async def _jobs(pool: ArqRedis, settings: Settings, prefix: str) -> dict[str, float]:
    """The run's queued jobs whose id starts with `prefix`, with when they are due (ms since the epoch)."""
    members = await pool.zrange(settings.queue_name, 0, -1, withscores=True)
    return {member.decode(): score for member, score in members if member.decode().startswith(prefix)}


async def _drop_jobs(pool: ArqRedis, settings: Settings, job_ids: Iterable[str]) -> None:
    for job_id in job_ids:
        await pool.zrem(settings.queue_name, job_id)
        await pool.delete(job_key_prefix + job_id)


async def test_a_poked_pump_empties_its_endpoint_then_stops_and_enqueues_nothing(
    world: World,
    engine: AsyncEngine,
    settings: Settings,
    arq_pool: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poke is answered by the lease it causes: once nothing is due and nothing in flight, the
    pump ends at once, well within its drain limit, so it hands nothing on (no drain job) and
    its successes need no retry job."""
    # A pump that kept leasing would stop here, hand the endpoint on, and fail the test (not hang).
    monkeypatch.setattr(engine_module, "DRAIN_SECONDS", 3.0)
    with receivers(None) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        ids = await _due(engine, endpoint, 2)
        async with _pump_context(engine, settings, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            pump.poke()  # work arrived for it before it ran
            recorded = await asyncio.wait_for(pump.run(context.pumps), 10)
    try:
        assert recorded == 2 and len(receiver.requests) == 2 and context.pumps == {}
        assert await _statuses(engine, ids) == ["successful", "successful"]
        assert await _jobs(arq_pool, settings, f"drain:{endpoint.host}:") == {}
        assert [await _jobs(arq_pool, settings, deliver_job_id(i, 1)) for i in ids] == [{}, {}]
    finally:
        await _drop_jobs(arq_pool, settings, await _jobs(arq_pool, settings, f"drain:{endpoint.host}:"))
        for delivery_id in ids:
            await _drop_jobs(arq_pool, settings, await _jobs(arq_pool, settings, f"deliver:{delivery_id}:"))


async def test_a_pump_at_its_drain_limit_hands_the_endpoint_to_a_new_job(
    engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "DRAIN_SECONDS", 0.0)
    host = endpoint_host(f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/drain")
    async with _pump_context(engine, settings, arq_pool) as context:
        pump = EndpointPump(context, host)
        context.pumps[host] = pump
        pump.poke()
        assert await asyncio.wait_for(pump.run(context.pumps), 10) == 0
    drained = await _jobs(arq_pool, settings, f"drain:{host}:")
    try:
        assert len(drained) == 1 and context.pumps == {}
    finally:
        await _drop_jobs(arq_pool, settings, drained)


async def test_after_a_short_lease_a_pump_leases_again_only_when_poked(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A lease that came back short of the free slots means nothing else was due: the pump then
    only records until a poke (the job that comes with new work) says more is due."""
    with receivers(lambda n: Reply(hang=n == 0)) as (receiver,):
        endpoint = await _endpoint(world, receiver.url)
        (first,) = await _due(engine, endpoint)
        async with _pump_context(engine, settings, arq_pool) as context:
            pump = EndpointPump(context, endpoint.host)
            context.pumps[endpoint.host] = pump
            running = asyncio.create_task(pump.run(context.pumps))
            await eventually(lambda: receiver.in_flight == 1, what="the first attempt")
            # Due while the first is in flight, without a poke.
            (second,) = await _due(engine, endpoint)
            receiver.release.set()
            assert await asyncio.wait_for(running, 10) == 1
    assert len(receiver.requests) == 1
    assert await _statuses(engine, [first, second]) == ["successful", "pending"]


async def test_a_retry_due_within_the_short_wait_is_enqueued_deferred(
    world: World, engine: AsyncEngine, settings: Settings, arq_pool: ArqRedis
) -> None:
    """A retry due in at most SHORT_WAIT_SECONDS (60 s, here a 429's Retry-After) gets a deferred
    job; one due later lives only in PostgreSQL until the sweeper enqueues it."""
    with receivers(
        lambda n: Reply(429, b"slow down", {"Retry-After": "60"}),
        lambda n: Reply(429, b"slow down", {"Retry-After": "61"}),
    ) as (soon, later):
        endpoints = [await _endpoint(world, receiver.url) for receiver in (soon, later)]
        ids = [(await _due(engine, endpoint))[0] for endpoint in endpoints]
        started = time.time() * 1000
        async with _pump_context(engine, settings, arq_pool) as context:
            for endpoint in endpoints:
                pump = EndpointPump(context, endpoint.host)
                context.pumps[endpoint.host] = pump
                assert await asyncio.wait_for(pump.run(context.pumps), 10) == 1
        finished = time.time() * 1000
    jobs = [await _jobs(arq_pool, settings, f"deliver:{delivery_id}:") for delivery_id in ids]
    try:
        assert await _statuses(engine, ids) == ["pending", "pending"]
        assert list(jobs[0]) == [deliver_job_id(ids[0], 1)] and jobs[1] == {}
        assert started + 60_000 <= jobs[0][deliver_job_id(ids[0], 1)] <= finished + 60_000
    finally:
        for queued in jobs:
            await _drop_jobs(arq_pool, settings, queued)


async def test_recording_alone_neither_waits_for_the_endpoint_lock_nor_leases(
    engine: AsyncEngine, settings: Settings
) -> None:
    """`settle()` with nothing wanted records in one statement of its own: a counted lease of
    another worker (holding the endpoint's lock) does not hold it up, and nothing is leased."""
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/record"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 2)]
    host = endpoint_host(url)
    try:
        async with guarded_client(()) as client:
            a = Deliverer(sessionmaker, settings, client, "worker-a")
            _, (leased,), _ = await settle(a, host=host, wanted=1)
            async with engine.connect() as other:
                await other.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:host, 0))"), {"host": host}
                )
                recording = asyncio.ensure_future(
                    settle(a, host=host, results=[(leased, Outcome(status_code=200))])
                )
                idle = asyncio.ensure_future(settle(a, host=host))
                done, _ = await asyncio.wait({recording, idle}, timeout=5)
                await other.rollback()
                plans, taken, more = await recording
                assert done == {recording, idle}  # neither waited for the lock
                assert [plan and plan.status for plan in plans] == ["successful"]
                assert taken == [] and not more
                assert await idle == ([], [], False)
        assert await _statuses(engine, ids) == ["successful", "pending"]
    finally:
        await _forget_deliveries(engine, ids)


async def test_recording_alone_is_one_statement_without_a_transaction(
    settings: Settings, engine: AsyncEngine
) -> None:
    """The pump's rounds that only record cost one round trip: no BEGIN or COMMIT around it."""
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/one"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 2)]
    host = endpoint_host(url)
    # One connection, so the one watched is the one `settle()` uses.
    settle_engine = create_async_engine(
        settings.async_database_url,
        pool_size=1,
        max_overflow=0,
        connect_args=statement_cache_options(settings),
    )
    sent: list[str] = []

    def log(query: LoggedQuery) -> None:
        sent.append(query.query)

    try:
        async with guarded_client(()) as client:
            a = Deliverer(sessionmaker, settings, client, "worker-a", settle_engine=settle_engine)
            _, leased, _ = await settle(a, host=host, wanted=2)
            ok = Outcome(status_code=200)
            await settle(a, host=host, results=[(leased[0], ok)])  # the statement prepared
            async with settle_engine.connect() as connection:
                driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            driver.add_query_logger(log)
            plans, _, _ = await settle(a, host=host, results=[(leased[1], ok)])
            await asyncio.sleep(0)  # the logger is called soon after
            driver.remove_query_logger(log)
        assert [plan and plan.status for plan in plans] == ["successful"]
        assert sent == [record._RECORD]
    finally:
        await settle_engine.dispose()
        await _forget_deliveries(engine, ids)


# One attempt as `send.send_attempt` builds and signs it: leased, sent to a receiver, recorded.


async def _send_once(
    engine: AsyncEngine, settings: Settings, delivery: OutboundDelivery, entry: WebhookLogEntry
) -> Outcome:
    """Commit the delivery, lease it, send it and record its outcome in this process."""
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    async with sessionmaker() as session, session.begin():
        session.add(delivery)
        await session.flush()
        session.add(entry)
    async with guarded_client(parse_networks(settings.outbound_allow_networks)) as client:
        deliverer = Deliverer(sessionmaker, settings, client, f"worker-{uuid.uuid4().hex[:8]}")
        _, leased, _ = await settle(deliverer, host=delivery.endpoint_host, wanted=1)
        assert [attempt.id for attempt in leased] == [delivery.id]
        outcome = await send_attempt(deliverer, leased[0])
        await settle(deliverer, host=delivery.endpoint_host, results=[(leased[0], outcome)])
    return outcome


async def test_a_webhooks_app_user_auth_works_as_sent_without_the_app_secret(
    world: World, engine: AsyncEngine, settings: Settings, client: httpx.AsyncClient
) -> None:
    """`Authorization: <token_type> <access_token>` is the installation's app user, as giosg's
    integrations call the API with it: no app secret needed."""
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    app = await world.app(
        provider, is_app_user_required=True, app_user_default_first_name="Bot", app_user_default_last_name="A"
    )
    installation = await world.install(org, app, scopes=["settings"])
    assert installation.app_user_id is not None
    with receivers(None) as (receiver,):
        webhook_id = await world.webhook(provider, app, receiver.url, sub(CHATS))
        channel = CHATS.format(organization_id=org.org_id)
        delivery, entry = build_delivery(
            kind="webhook",
            app_id=app.id,
            organization_id=provider.org_id,
            webhook_id=webhook_id,
            installation_id=installation.id,
            target_organization_id=org.org_id,
            app_user_id=installation.app_user_id,
            method="POST",
            endpoint_url=receiver.url,
            channel=channel,
            action="added",
            resource_id="chat-1",
            payload={"channel": channel, "action": "added", "resource_id": "chat-1"},
        )
        outcome = await _send_once(engine, settings, delivery, entry)
    assert outcome.status_code == 200 and [r.method for r in receiver.requests] == ["POST"]
    (body,) = verified(receiver, app.secret)
    auth = body["app_user_auth"]
    as_sent = {"Authorization": f"{auth['token_type']} {auth['access_token']}"}
    listed = await client.get(f"/api/v5/orgs/{org.org_id}/app_installations", headers=as_sent)
    assert listed.status_code == 200, listed.text
    assert str(installation.id) in {item["id"] for item in listed.json()["results"]}


async def test_a_trigger_sent_during_a_rotation_verifies_with_either_secret(
    world: World, engine: AsyncEngine, settings: Settings
) -> None:
    """Within the grace period an app may still check with the replaced secret: a trigger's GET
    carries a signature by each, like a webhook's POST."""
    provider = await world.tenant("Provider")
    app = await world.app(provider)
    replaced, current = app.secret, new_app_secret()

    async def rotate(session: AsyncSession) -> None:
        stored = await session.get(App, app.id)
        assert stored is not None
        stored.previous_secret, stored.secret = stored.secret, current
        stored.previous_secret_expires_at = datetime.now(UTC) + timedelta(hours=1)

    await world.run(rotate)
    with receivers(None) as (receiver,):
        delivery, entry = _uninstall_trigger(receiver.url, app.id, signing_secret=replaced)
        outcome = await _send_once(engine, settings, delivery, entry)
    assert outcome.status_code == 200
    (request,) = receiver.requests
    assert request.method == "GET" and request.body == b""
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (current, replaced):
        StandardWebhook(secret).verify(request.body, request.headers, json_parse=False)


async def test_a_request_that_cannot_be_built_is_a_recorded_failure_not_an_exception(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A signing secret under an encryption key no longer configured fails its attempt with a
    reason in the log, and the delivery is retried; nothing is sent and nothing escapes."""
    # Encrypted under a key whose id no configured key has (dropped before `reencrypt` ran).
    unreadable = "enc:v1:00000000:" + base64.urlsafe_b64encode(b"x" * 40).decode()
    with receivers(None) as (receiver,):
        delivery, entry = _uninstall_trigger(receiver.url, uuid.uuid4(), signing_secret=unreadable)
        try:
            outcome = await _send_once(engine, settings, delivery, entry)
            async with AsyncSession(engine) as session:
                # Its columns only: the ORM row would decrypt the unreadable secret.
                stored = (
                    await session.execute(
                        select(OutboundDelivery.status, OutboundDelivery.attempt_count).where(
                            OutboundDelivery.id == delivery.id
                        )
                    )
                ).one()
                log = (
                    await session.scalars(
                        select(WebhookLogEntry)
                        .where(WebhookLogEntry.delivery_id == delivery.id)
                        .order_by(WebhookLogEntry.retry_index)
                    )
                ).all()
        finally:
            await _forget_deliveries(engine, [delivery.id])
    assert outcome.error == "The request could not be built: EncryptionKeyMissing."
    assert receiver.requests == []
    assert tuple(stored) == ("pending", 1)
    assert [(e.retry_index, e.status, e.reason) for e in log] == [
        (0, "failed", outcome.error),
        (1, "pending", None),
    ]


def _uninstall_trigger(
    url: str, app_id: uuid.UUID, *, signing_secret: str
) -> tuple[OutboundDelivery, WebhookLogEntry]:
    org = uuid.uuid4()
    return build_delivery(
        kind="trigger",
        app_id=app_id,
        organization_id=org,
        method="GET",
        endpoint_url=url,
        channel=f"/api/v5/orgs/{org}/owned_apps/{app_id}/installations",
        action="removed",
        resource_id="installation-1",
        payload={"type": "uninstall", "claims": {"organization_id": str(org)}},
        signing_secret=signing_secret,
        max_attempts=3,
    )


def _recorded_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == record.__name__]


# wanted 0: recording alone; 3 (more than finished): recording under the endpoint's lock, then a
# counted lease; 2 (as many as finished): recording that passes the slots on (`record_and_lease`).
@pytest.mark.parametrize("wanted", [0, 3, 2], ids=["alone", "then-a-counted-lease", "passing-slots"])
async def test_a_redirect_delivers_a_trigger_and_fails_a_webhook_as_recorded_and_logged(
    world: World, engine: AsyncEngine, settings: Settings, caplog: pytest.LogCaptureFixture, wanted: int
) -> None:
    """A 302 to a trigger (a page, followed by a browser) is delivered; to a webhook it is a failed
    attempt, retried: in the delivery, its log entry and the worker's log, on every way of recording."""
    caplog.set_level(logging.INFO, logger=record.__name__)
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/moved"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    (hook,) = await _due(engine, await _endpoint(world, url))
    ((trigger, _),) = await _queued(sessionmaker, url, 1)
    host = endpoint_host(url)
    moved = Outcome(status_code=302, headers={"location": "http://127.0.0.1:1/elsewhere"})
    try:
        async with guarded_client(()) as client:
            a = Deliverer(sessionmaker, settings, client, "worker-a")
            _, leased, _ = await settle(a, host=host, wanted=2)
            attempts = {attempt.id: attempt for attempt in leased}
            assert set(attempts) == {hook, trigger}
            results = [(attempts[hook], moved), (attempts[trigger], moved)]
            plans, _, _ = await settle(a, host=host, results=results, wanted=wanted)
        assert [plan and plan.status for plan in plans] == ["pending", "successful"]
        assert await _statuses(engine, [hook, trigger]) == ["pending", "successful"]
        async with sessionmaker() as session:
            entries = {
                entry.delivery_id: (entry.status, entry.reason, entry.response_status_code)
                for entry in await session.scalars(
                    select(WebhookLogEntry)
                    .where(WebhookLogEntry.retry_index == 0)
                    .where(WebhookLogEntry.delivery_id.in_([hook, trigger]))
                )
            }
        assert entries == {
            hook: ("failed", "Redirect (302) not followed.", 302),
            trigger: ("successful", None, 302),
        }
        assert _recorded_lines(caplog) == [
            f"delivery {hook} attempt 1: Redirect (302) not followed. (pending)",
            f"delivery {trigger} attempt 1: ok (successful)",
        ]
    finally:
        await _forget_deliveries(engine, [hook, trigger])


async def test_a_lost_lease_in_a_batch_leaves_the_rest_of_it_reported(
    engine: AsyncEngine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """An attempt whose lease another worker took is skipped (None, a warning); the attempts after
    it in the same batch are still reported: their plans (the pump's retries) and their log lines."""
    caplog.set_level(logging.INFO, logger=record.__name__)
    url = f"http://127.0.0.1:{random.randrange(10_000, 60_000)}/lost"
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    ids = [delivery_id for delivery_id, _ in await _queued(sessionmaker, url, 3)]
    host = endpoint_host(url)
    try:
        async with guarded_client(()) as client:
            a, b = (Deliverer(sessionmaker, settings, client, f"worker-{name}") for name in "ab")
            _, leased, _ = await settle(a, host=host, wanted=3)
            assert [attempt.id for attempt in leased] == ids
            # The middle attempt's lease lapses and worker b takes it over.
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    update(OutboundDelivery)
                    .where(OutboundDelivery.id == ids[1])
                    .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
                )
            assert [attempt.id for attempt in (await settle(b, host=host, wanted=1))[1]] == [ids[1]]
            results = [(leased[0], Outcome(status_code=200)), (leased[1], Outcome(status_code=200))]
            results.append((leased[2], Outcome(status_code=500)))
            plans, _, _ = await settle(a, host=host, results=results)
        assert [plan and plan.status for plan in plans] == ["successful", None, "pending"]
        assert await _statuses(engine, ids) == ["successful", "started", "pending"]
        assert _recorded_lines(caplog) == [
            f"delivery {ids[0]} attempt 1: ok (successful)",
            f"lease of delivery {ids[1]} was lost during the attempt",
            f"delivery {ids[2]} attempt 1: Non-2xx response: 500. (pending)",
        ]
    finally:
        await _forget_deliveries(engine, ids)
