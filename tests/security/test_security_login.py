"""Issue 13, item 3: password guessing is throttled (Redis, shared by every API process), password
hashing is bounded per process, and passwords use OWASP's argon2id parameters (rehashed at login)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from arq.connections import ArqRedis
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import (
    HashingBusy,
    PasswordHashing,
    configure_password_hashing,
    hash_password,
    new_app_secret,
    new_token_key,
    password_needs_rehash,
    verify_password,
)
from apps_api.kit.throttle import (
    MAX_FAILURES,
    MAX_LOCK_SECONDS,
    Subject,
    ThrottleUnavailable,
    locked_for,
    record_failure,
    record_success,
)
from apps_api.main import create_app
from apps_api.models import AppUserCode
from apps_api.settings import Settings
from apps_api.web.session import COOKIE_NAME, DEVICE_COOKIE_NAME, DEVICE_TTL_SECONDS
from tests.fixtures.factories import make_tenant
from tests.fixtures.installflow import (
    PASSWORD,
    csrf_of,
    install_directly,
    install_url,
    issue_code,
    make_bot_app,
    make_installer,
    make_public_app,
    token_form,
    unique_email,
)

NEXT = "/settings/apps"


def _address() -> str:
    return f"127.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


async def _client(app: Any, address: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address or _address(), 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _login(client: httpx.AsyncClient, app_id: Any, email: str | None, password: str) -> httpx.Response:
    page = await client.get(install_url(app_id, NEXT))
    assert page.status_code == 200
    return await client.post(
        f"/apps/{app_id}/install/login",
        data={"csrf_token": csrf_of(page), "next": NEXT, "email": email, "password": password},
    )


@pytest.fixture
async def public_app(session: AsyncSession) -> Any:
    owner = await make_tenant(session, name="Owner")
    return await make_public_app(session, owner.organization)


async def test_a_locked_account_refuses_even_the_right_password_without_a_device_cookie(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any
) -> None:
    installer = await make_installer(session)
    statuses = [
        (await _login(client, public_app.id, installer.user.email, "wrong")).status_code for _ in range(5)
    ]
    # The fifth failure in 15 minutes starts the lock.
    assert statuses == [400, 400, 400, 400, 429]
    right = await _login(client, public_app.id, installer.user.email, PASSWORD)
    assert right.status_code == 429
    assert 0 < int(right.headers["retry-after"]) <= 60
    assert "try again in 1 minute" in right.text
    # Per account: from another address the account is locked too.
    async with await _client(client._transport.app) as elsewhere:  # type: ignore[attr-defined]
        assert (await _login(elsewhere, public_app.id, installer.user.email, PASSWORD)).status_code == 429
    # Only the guessed account is locked (5 failures are far from the address's 20): another
    # account from the same address logs in.
    other = await make_installer(session)
    assert (await _login(client, public_app.id, other.user.email, PASSWORD)).status_code == 303


async def test_a_guessing_address_is_locked_after_20_failures_for_every_account(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any
) -> None:
    victim = await make_installer(session)
    # Distinct (unknown) accounts: no account's own lock (5) trips first.
    statuses = [
        (await _login(client, public_app.id, unique_email("nobody"), "guess")).status_code for _ in range(20)
    ]
    assert statuses == [400] * 19 + [429]
    # The address is locked for everyone.
    locked = await _login(client, public_app.id, victim.user.email, PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # The victim's account itself has no failures: from another address it logs in.
    async with await _client(client._transport.app) as elsewhere:  # type: ignore[attr-defined]
        assert (await _login(elsewhere, public_app.id, victim.user.email, PASSWORD)).status_code == 303


async def _sign_in(
    client: httpx.AsyncClient, form: str, app_id: Any, email: str, password: str
) -> httpx.Response:
    """One attempt at either sign-in form: the install flow's or the developer console's."""
    if form == "install":
        return await _login(client, app_id, email, password)
    page = await client.get("/console/login", params={"next": "/console/apps"})
    assert page.status_code == 200, page.text
    return await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(page), "next": "/console/apps", "email": email, "password": password},
    )


@asynccontextmanager
async def _browser_that_signed_in(
    app: Any, form: str, app_id: Any, email: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser where the user signed in before: its session is over, its device cookie stays."""
    async with await _client(app) as browser:
        assert (await _sign_in(browser, form, app_id, email, PASSWORD)).status_code == 303
        assert browser.cookies.get(DEVICE_COOKIE_NAME, path="/apps/")
        browser.cookies.delete(COOKIE_NAME)
        yield browser


SIGN_IN_FORMS = pytest.mark.parametrize("form", ["install", "console"])


@SIGN_IN_FORMS
async def test_a_device_cookie_signs_in_to_an_account_a_stranger_locked(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any, form: str
) -> None:
    victim = await make_installer(session)
    email = victim.user.email
    app = client._transport.app  # type: ignore[attr-defined]
    async with _browser_that_signed_in(app, form, public_app.id, email) as own_browser:
        # A stranger who knows the email locks the account.
        statuses = [
            (await _sign_in(client, form, public_app.id, email, "guess")).status_code for _ in range(5)
        ]
        assert statuses == [400, 400, 400, 400, 429]
        # A browser without the device cookie is refused, even with the right password.
        async with await _client(app) as other_browser:
            assert (await _sign_in(other_browser, form, public_app.id, email, PASSWORD)).status_code == 429
        # The owner's browser is still checked against the password: wrong is 400, right signs in.
        assert (await _sign_in(own_browser, form, public_app.id, email, "typo")).status_code == 400
        assert (await _sign_in(own_browser, form, public_app.id, email, PASSWORD)).status_code == 303


@SIGN_IN_FORMS
async def test_failures_with_a_device_cookie_lock_that_cookie_not_the_account(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any, form: str
) -> None:
    user = await make_installer(session)
    email = user.user.email
    app = client._transport.app  # type: ignore[attr-defined]
    async with _browser_that_signed_in(app, form, public_app.id, email) as browser:
        statuses = [
            (await _sign_in(browser, form, public_app.id, email, "guess")).status_code for _ in range(5)
        ]
        assert statuses == [400, 400, 400, 400, 429]
        assert (await _sign_in(browser, form, public_app.id, email, PASSWORD)).status_code == 429
    # The account has no failures: another browser signs in.
    assert (await _sign_in(client, form, public_app.id, email, PASSWORD)).status_code == 303


async def test_only_a_valid_device_cookie_of_the_account_passes_its_lock(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any, settings: Settings
) -> None:
    mine, locked = await make_installer(session), await make_installer(session)
    app = client._transport.app  # type: ignore[attr-defined]
    for _ in range(5):
        await _login(client, public_app.id, locked.user.email, "guess")
    # A device cookie of another account does not open this one's lock.
    async with _browser_that_signed_in(app, "install", public_app.id, mine.user.email) as browser:
        assert (await _login(browser, public_app.id, locked.user.email, PASSWORD)).status_code == 429

    # Nor does one that the service did not sign; the same cookie under the service's key does.
    def device_cookie(key: str) -> str:
        serializer = URLSafeTimedSerializer(key, salt="apps-api.sign-in.device")
        return serializer.dumps({"uid": str(locked.user.id), "n": secrets.token_urlsafe(8)})

    for key, status in (("not-the-key", 429), (settings.secret_key, 303)):
        async with await _client(app) as browser:
            browser.cookies.set(
                DEVICE_COOKIE_NAME, device_cookie(key), domain="testserver.local", path="/apps/"
            )
            assert (await _login(browser, public_app.id, locked.user.email, PASSWORD)).status_code == status


async def test_the_device_cookie_is_signed_httponly_samesite_and_secure_over_https(
    app: Any, session: AsyncSession, public_app: Any
) -> None:
    user = await make_installer(session)
    transport = httpx.ASGITransport(app=app, client=(_address(), 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as browser:
        signed_in = await _login(browser, public_app.id, user.user.email, PASSWORD)
    assert signed_in.status_code == 303
    cookies = [
        value for value in signed_in.headers.get_list("set-cookie") if value.startswith(DEVICE_COOKIE_NAME)
    ]
    assert {cookie.split("Path=")[1].split(";")[0] for cookie in cookies} == {"/apps/", "/console/"}
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
        assert f"Max-Age={DEVICE_TTL_SECONDS}" in cookie


async def test_each_new_lock_lasts_twice_as_long_up_to_one_hour(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any, arq_pool: ArqRedis
) -> None:
    email = unique_email("guessed")
    seen = []
    for _ in range(8):
        for _ in range(4):
            assert (await _login(client, public_app.id, email, "wrong")).status_code == 400
        locking = await _login(client, public_app.id, email, "wrong")
        assert locking.status_code == 429
        seen.append(int(locking.headers["retry-after"]))
        # Let the lock end without waiting for it: what the passing of time would do in Redis.
        await arq_pool.delete(Subject("login-account", email).key("lock", arq_pool.default_queue_name))
        address = client._transport.client[0]  # type: ignore[attr-defined]
        await arq_pool.delete(Subject("login-address", address).key("lock", arq_pool.default_queue_name))
        # The address also counted every failure: give it a clean slate to isolate the account.
        await arq_pool.delete(
            *(
                Subject("login-address", address).key(p, arq_pool.default_queue_name)
                for p in ("fails", "level")
            )
        )
    assert seen == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert MAX_LOCK_SECONDS == 3600


async def test_the_throttle_is_shared_by_api_processes(
    app: Any, session: AsyncSession, public_app: Any, settings: Settings, arq_pool: ArqRedis
) -> None:
    # A second application instance (another process's state: its own hashing bound, its own
    # memory) on the same Redis sees the first one's lock.
    second = create_app(settings)
    second.state.request_sessions = app.state.request_sessions
    second.state.read_connections = app.state.read_connections
    second.state.arq = arq_pool
    installer = await make_installer(session)
    async with await _client(app) as first_client, await _client(second) as second_client:
        for _ in range(5):
            await _login(first_client, public_app.id, installer.user.email, "wrong")
        assert (await _login(second_client, public_app.id, installer.user.email, PASSWORD)).status_code == 429


async def test_a_success_clears_the_account_failures(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any
) -> None:
    installer = await make_installer(session)
    for _ in range(4):
        assert (await _login(client, public_app.id, installer.user.email, "wrong")).status_code == 400
    assert (await _login(client, public_app.id, installer.user.email, PASSWORD)).status_code == 303
    async with await _client(client._transport.app) as fresh:  # type: ignore[attr-defined]
        for _ in range(4):
            assert (await _login(fresh, public_app.id, installer.user.email, "wrong")).status_code == 400


async def test_identity_token_lock_refuses_only_wrong_secrets(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    code = await issue_code(session, installation)
    statuses = []
    for _ in range(6):
        response = await client.post("/identity/token", data=token_form(app, code, client_secret="wrong"))
        statuses.append(response.status_code)
    assert statuses == [400, 400, 400, 400, 429, 429]
    assert response.json()["error"] == "temporarily_unavailable" and int(response.headers["retry-after"]) > 0
    # Whoever knows the app id cannot block the app: its own secret still gets the token.
    right = await client.post("/identity/token", data=token_form(app, code))
    assert right.status_code == 200, right.text
    assert right.json()["user_id"] == str(installation.app_user_id)


async def test_identity_token_counts_every_spelling_of_a_client_id_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    code = await issue_code(session, installation)
    spellings = [
        str(app.id).upper(),
        "{" + str(app.id) + "}",
        f"urn:uuid:{app.id}",
        app.id.hex,
        str(app.id),
    ]
    statuses = [
        (
            await client.post(
                "/identity/token", data=token_form(app, code, client_id=spelling, client_secret="x")
            )
        ).status_code
        for spelling in spellings
    ]
    assert statuses == [400, 400, 400, 400, 429]
    # The canonical id is locked for wrong secrets, whatever the spelling.
    for spelling in spellings:
        again = await client.post(
            "/identity/token", data=token_form(app, code, client_id=spelling, client_secret="x")
        )
        assert again.status_code == 429, spelling
    # A client_id that is no spelling of a UUID is refused without a lookup, the right secret too.
    for malformed in (f"app-{app.id}", f"{app.id}0", ""):
        refused = await client.post("/identity/token", data=token_form(app, code, client_id=malformed))
        assert refused.status_code == 400 and refused.json()["error"] in ("invalid_client", "invalid_request")
    # The right secret under any spelling still gets the token.
    right = await client.post("/identity/token", data=token_form(app, code, client_id=f"urn:uuid:{app.id}"))
    assert right.status_code == 200, right.text
    (stored,) = (
        await session.execute(select(AppUserCode).where(AppUserCode.app_installation_id == installation.id))
    ).scalars()
    await session.refresh(stored)
    assert stored.used_at is not None


@pytest.fixture
async def one_hashing_slot() -> AsyncIterator[Any]:
    bound = configure_password_hashing(concurrency=1, wait_seconds=0.2)
    yield bound
    configure_password_hashing(concurrency=2, wait_seconds=5.0)


async def test_password_hashing_is_bounded_per_process(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any, one_hashing_slot: Any
) -> None:
    installer = await make_installer(session)
    page = await client.get(install_url(public_app.id, NEXT))
    form = {"csrf_token": csrf_of(page), "next": NEXT, "email": installer.user.email, "password": PASSWORD}
    await one_hashing_slot.slots.acquire()  # every slot busy (another login hashing)
    try:
        busy = await client.post(f"/apps/{public_app.id}/install/login", data=form)
    finally:
        one_hashing_slot.slots.release()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    # A login that finds every slot busy waits for one (up to the wait), then goes on.
    one_hashing_slot.wait_seconds = 60
    await one_hashing_slot.slots.acquire()
    waiting = asyncio.create_task(client.post(f"/apps/{public_app.id}/install/login", data=form))
    while not one_hashing_slot.slots._waiters:  # the login is queued for the slot
        assert not waiting.done()
        await asyncio.sleep(0.01)
    one_hashing_slot.slots.release()
    assert (await waiting).status_code == 303


async def test_argon2id_at_owasp_parameters_and_rehash_on_login(
    client: httpx.AsyncClient, session: AsyncSession, public_app: Any
) -> None:
    assert hash_password("x").startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    installer = await make_installer(session)
    # A hash made with argon2-cffi's old defaults (m=64 MiB, t=3, p=4), as stored before.
    old = PasswordHasher().hash(PASSWORD)
    assert "m=65536,t=3,p=4" in old and password_needs_rehash(old)
    installer.user.password_hash = old
    await session.flush()
    assert (await _login(client, public_app.id, installer.user.email, PASSWORD)).status_code == 303
    await session.refresh(installer.user)
    assert installer.user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not password_needs_rehash(installer.user.password_hash)
    async with await _client(client._transport.app) as again:  # type: ignore[attr-defined]
        assert (await _login(again, public_app.id, installer.user.email, PASSWORD)).status_code == 303


# --- kit/security.py's small guarantees (survivors of its generated mutants) ---------------------


def test_keys_and_secrets_have_their_full_length() -> None:
    assert len(new_token_key()) == 43  # 32 random bytes, URL-safe base64 without padding
    assert re.fullmatch(r"[0-9a-f]{64}", new_app_secret())


def test_a_missing_hash_matches_no_password_not_even_the_dummys() -> None:
    assert verify_password(None, "not a real password") is False
    assert verify_password(None, "anything") is False
    assert verify_password("not a hash", "anything") is False
    stored = hash_password("right")
    assert verify_password(stored, "right") is True and verify_password(stored, "wrong") is False


def test_an_unreadable_hash_needs_rehashing() -> None:
    assert password_needs_rehash("not a hash") is True
    assert password_needs_rehash(hash_password("x")) is False


def test_the_hashing_bound_before_startup_is_the_settings_default() -> None:
    defaults, fields = PasswordHashing(), Settings.model_fields
    assert defaults.concurrency == fields["password_hash_concurrency"].default
    assert defaults.wait_seconds == fields["password_hash_wait_seconds"].default


async def test_a_hashing_bound_of_zero_or_less_still_hashes_one_at_a_time() -> None:
    # The setting has no lower bound: APPS_API_PASSWORD_HASH_CONCURRENCY=0 must not turn every
    # login into a 503.
    for concurrency in (0, -1):
        hashing = PasswordHashing(concurrency=concurrency, wait_seconds=0.2)
        assert await hashing.run(len, "abc") == 3
        await hashing.slots.acquire()  # the one slot busy
        try:
            with pytest.raises(HashingBusy):
                await hashing.run(len, "abc")
        finally:
            hashing.slots.release()


def test_each_event_loop_gets_hashing_slots_of_its_own() -> None:
    hashing = PasswordHashing()

    async def twice() -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        return hashing.slots, hashing.slots

    first, same = asyncio.run(twice())
    assert first is same
    other, _ = asyncio.run(twice())
    assert other is not first


async def test_the_throttle_window_is_15_minutes_and_the_first_lock_one(arq_pool: ArqRedis) -> None:
    """README, Limits: "5 in 15 min", then locked for 1 min (doubling up to 1 h), the level kept a day."""
    subject = Subject("test-window", secrets.token_hex(8))
    try:
        for _ in range(4):
            assert await record_failure(arq_pool, [subject]) == 0
        counted_for = await arq_pool.ttl(subject.key("fails", arq_pool.default_queue_name))
        # Counted from the first failure a moment ago (a few seconds' slack for a busy machine).
        assert 15 * 60 - 10 <= counted_for <= 15 * 60
        assert await record_failure(arq_pool, [subject]) == 60
        assert 30 <= await locked_for(arq_pool, [subject]) <= 60
        # README, Security: "the level is forgotten a day after the last lock".
        assert (
            24 * 3600 - 30
            <= await arq_pool.ttl(subject.key("level", arq_pool.default_queue_name))
            <= 24 * 3600
        )
    finally:
        await arq_pool.delete(
            *(subject.key(part, arq_pool.default_queue_name) for part in ("fails", "level", "lock"))
        )


async def test_without_redis_configured_nothing_is_counted() -> None:
    subject = Subject("test-none", "x")
    assert await locked_for(None, [subject]) == 0
    assert await record_failure(None, [subject]) == 0
    await record_success(None, [subject])


async def test_a_lock_in_its_last_second_still_counts(arq_pool: ArqRedis) -> None:
    subject = Subject("test-last-second", secrets.token_hex(8))
    try:
        await arq_pool.set(subject.key("lock", arq_pool.default_queue_name), "1", ex=1)
        assert await locked_for(arq_pool, [subject]) == 1
    finally:
        await arq_pool.delete(subject.key("lock", arq_pool.default_queue_name))


async def test_no_subjects_count_nothing(arq_pool: ArqRedis) -> None:
    # "0: none" also when there is nothing to count against, Redis or not.
    assert await locked_for(arq_pool, []) == 0
    assert await record_failure(arq_pool, []) == 0
    await record_success(arq_pool, [])


async def test_a_lock_is_logged_when_it_starts_and_failures_before_it_are_not(
    arq_pool: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    subject = Subject("test-logged", secrets.token_hex(8))
    caplog.set_level(logging.WARNING, logger="apps_api.kit.throttle")

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "apps_api.kit.throttle"]

    try:
        for _ in range(4):
            assert await record_failure(arq_pool, [subject]) == 0
        assert logged() == []
        assert await record_failure(arq_pool, [subject]) == 60
        assert logged() == ["test-logged locked for 60 s after 5 failures"]
    finally:
        await arq_pool.delete(
            *(subject.key(part, arq_pool.default_queue_name) for part in ("fails", "level", "lock"))
        )


@pytest.fixture
async def unreachable_redis() -> AsyncIterator[ArqRedis]:
    """A Redis client for a loopback port that nothing listens on: every command fails to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redis = ArqRedis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    yield redis
    await redis.aclose()


async def test_when_redis_does_not_answer_the_throttle_refuses_rather_than_counts_nothing(
    unreachable_redis: ArqRedis,
) -> None:
    """docs/security.md: "If Redis does not answer, logins get 503 rather than going unthrottled"."""
    subject = Subject("test-unreachable", secrets.token_hex(8))
    with pytest.raises(ThrottleUnavailable):
        await locked_for(unreachable_redis, [subject])
    with pytest.raises(ThrottleUnavailable):
        await record_failure(unreachable_redis, [subject])
    with pytest.raises(ThrottleUnavailable):
        await record_success(unreachable_redis, [subject])


async def test_when_redis_does_not_answer_sign_ins_and_token_exchanges_get_503(
    app: Any, client: httpx.AsyncClient, session: AsyncSession, public_app: Any, unreachable_redis: ArqRedis
) -> None:
    installer = await make_installer(session)
    owner = await make_tenant(session, name="Owner")
    bot = await make_bot_app(session, owner.organization)
    code = await issue_code(session, await install_directly(session, installer, bot))
    email = installer.user.email
    assert email is not None
    app.state.arq = unreachable_redis
    for form in ("install", "console"):
        busy = await _sign_in(client, form, public_app.id, email, PASSWORD)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5", form
    refused = await client.post("/identity/token", data=token_form(bot, code))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "temporarily_unavailable"


async def test_deployments_sharing_a_redis_never_count_each_others_failures(arq_pool: ArqRedis) -> None:
    """Keys are named after the deployment's queue: another deployment (or test run) on the same
    Redis, failing the same subject to a lock, leaves this one's count alone."""
    other = ArqRedis(
        connection_pool=arq_pool.connection_pool, default_queue_name=f"{arq_pool.default_queue_name}:other"
    )
    subject = Subject("test-namespaces", secrets.token_hex(8))
    try:
        for _ in range(MAX_FAILURES):
            await record_failure(other, [subject])
        assert await locked_for(other, [subject]) > 0
        assert await locked_for(arq_pool, [subject]) == 0
        assert await record_failure(arq_pool, [subject]) == 0
        await record_success(other, [subject])
        assert await arq_pool.get(subject.key("fails", arq_pool.default_queue_name)) == b"1"
    finally:
        for pool in (arq_pool, other):
            await arq_pool.delete(
                *(subject.key(part, pool.default_queue_name) for part in ("fails", "level", "lock"))
            )
