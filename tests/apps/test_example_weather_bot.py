"""The example app (examples/weather_bot) end to end, as an integrator would run it.

Real processes on 127.0.0.1: `apps-api serve` and `apps-api worker` on the test database,
the example's `register.py` (with the provider's user token) and `bot.py` under uvicorn, and
headless Chromium for the install web flow. The test only talks to them over HTTP and reads
what the bot did from its `/status` page (which shows no token).
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.outbox import new_message_id
from apps_api.delivery.signing import signature_headers
from apps_api.delivery.triggers.tokens import encode_trigger_data
from apps_api.kit.db import unit_of_work
from apps_api.platform import service
from apps_api.settings import Settings
from tests.fixtures.browser import NewPage, needs_chromium
from tests.fixtures.factories import Tenant
from tests.fixtures.installflow import PASSWORD, install_url, unique_email
from tests.fixtures.live_server import ROOT, committed_tenant, free_port
from tests.fixtures.webhooks import cleanup, eventually, worker

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "weather_bot"
NEXT = "/healthz"  # where the browser should land on the Apps API after the bot's setup


class Process:
    """A subprocess whose output goes to a log file, ready once `ready_url` answers 200."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], ready_url: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="weather-bot-e2e-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            argv, cwd=cwd, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.ready_url = ready_url

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.process.args} exited:\n{self.output()}")
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.process.args} did not start:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@contextmanager
def running(argv: list[str], *, cwd: Path, ready_url: str, **env: str) -> Iterator[Process]:
    process = Process(argv, cwd=cwd, env=env, ready_url=ready_url)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@dataclass
class World:
    api: str
    bot: str
    owner: Tenant
    installer: Tenant
    app_id: str
    app_secret: str
    bot_process: Process

    def status(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.bot}/status", timeout=5)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def activity(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            entry
            for entry in self.status()["activity"]
            if entry["kind"] == kind and all(entry.get(key) == value for key, value in match.items())
        ]

    def installation(self, organization_id: uuid.UUID) -> dict[str, Any] | None:
        found = [i for i in self.status()["installations"] if i["organization_id"] == str(organization_id)]
        return found[0] if found else None

    def owned(self, path: str = "") -> str:
        """A path under the app's owned-app resource (the provider's routes)."""
        return f"/api/v5/orgs/{self.owner.org_id}/owned_apps/{self.app_id}{path}"

    def provider(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=self.owner.headers, timeout=10)


def register(api: str, owner: Tenant, bot_url: str) -> dict[str, str]:
    """The example's register.py, as its README runs it; returns the variables it exports."""
    done = subprocess.run(
        [sys.executable, "register.py", "--public-url", bot_url, "--partners"],
        cwd=EXAMPLE,
        env={
            **os.environ,
            "WEATHER_BOT_API_URL": api,
            "WEATHER_BOT_ORG_ID": str(owner.org_id),
            "WEATHER_BOT_PROVIDER_TOKEN": owner.token,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout)
    assert words[0] == "export"
    return dict(item.split("=", 1) for item in words[1:])


@pytest.fixture(scope="module")
def api_url(settings: Settings) -> Iterator[str]:
    """`apps-api serve` and a worker for the module's tests (each brings its own tenants and bot)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with (
        running(
            [sys.executable, "-m", "apps_api", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            ready_url=f"{api}/healthz",
        ),
        worker(),
    ):
        yield api


@pytest.fixture
async def world(api_url: str, engine: AsyncEngine) -> AsyncIterator[World]:
    owner = await committed_tenant(engine, "Weather Co")
    installer = await committed_tenant(
        engine, "Shop", features=["apps"], email=unique_email(), password=PASSWORD
    )
    async with AsyncSession(engine) as session, unit_of_work(session):
        await service.add_partnership(session=session, a=owner.org_id, b=installer.org_id)
    app_ids: list[uuid.UUID] = []
    api = api_url
    bot = f"http://127.0.0.1:{free_port()}"
    try:
        exported = register(api, owner, bot)
        app_ids.append(uuid.UUID(exported["WEATHER_BOT_APP_ID"]))
        bot_env = {
            "WEATHER_BOT_API_URL": api,
            "WEATHER_BOT_ORG_ID": str(owner.org_id),
            "WEATHER_BOT_PROVIDER_TOKEN": owner.token,
            **exported,
        }
        # No access log: trigger URLs carry JWTs and tokens in their query (README of the example).
        argv = [sys.executable, "-m", "uvicorn", "--factory", "bot:create_app", "--no-access-log"]
        argv += ["--host", "127.0.0.1", "--port", bot.rsplit(":", 1)[1]]
        with running(argv, cwd=EXAMPLE, ready_url=f"{bot}/status", **bot_env) as bot_process:
            yield World(
                api=api,
                bot=bot,
                owner=owner,
                installer=installer,
                app_id=exported["WEATHER_BOT_APP_ID"],
                app_secret=exported["WEATHER_BOT_APP_SECRET"],
                bot_process=bot_process,
            )
            assert "Traceback" not in bot_process.output(), bot_process.output()
    finally:
        await cleanup(engine, [owner.org_id, installer.org_id], app_ids)


async def _install_in_chromium(world: World, new_page: NewPage) -> str:
    """The installer's user installs the app through the browser flow; returns the page's final URL."""
    page = await new_page()
    await page.goto(world.api + install_url(world.app_id, NEXT))
    await page.fill("#email", world.installer.user.email or "")
    await page.fill("#password", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert await page.inner_text("#app-name") == "Install Weather Bot?"
    assert await page.input_value("#first_name") == "Weather"
    # Install -> 303 to the bot's trigger_url -> the bot exchanges the code -> 303 to redirect_uri.
    async with page.expect_navigation(url=world.api + NEXT):
        await page.click("#install")
    assert "ok" in (await page.content()).lower()
    return str(page.url)


@pytest.mark.browser
@needs_chromium
async def test_weather_bot_installed_in_a_browser_acts_as_its_app_user(
    world: World, new_page: NewPage
) -> None:
    landed = await _install_in_chromium(world, new_page)
    assert landed == world.api + NEXT

    # The bot verified the trigger, exchanged the app user code for a token and used it.
    with world.provider() as provider:
        installations = provider.get(world.owned("/installations"))
        assert installations.status_code == 200, installations.text
        (installation,) = installations.json()["results"]
    assert installation["organization_id"] == str(world.installer.org_id)
    stored = world.installation(world.installer.org_id)
    assert stored == {
        "organization_id": str(world.installer.org_id),
        "installation_id": installation["id"],
        "app_user_id": installation["app_user_id"],
        "source": "identity/token",
    }
    await eventually(lambda: world.activity("token_checked", organization_id=str(world.installer.org_id)))
    assert [entry["status_code"] for entry in world.activity("token_checked")] == [200]

    # The `added` webhook reached the bot, verified, and the bot read the installation as its app
    # user with the webhook's app_user_auth.
    await eventually(lambda: world.activity("greeted"), what="the bot's reaction to `added`")
    (greeted,) = world.activity("greeted")
    assert greeted["status_code"] == 200
    assert greeted["installation_id"] == installation["id"]
    assert greeted["app_user_id"] == installation["app_user_id"]
    assert greeted["organization_id"] == str(world.installer.org_id)

    # A forged or unsigned notification is refused, and nothing happens.
    forged = httpx.post(
        f"{world.bot}/giosg/webhook",
        content=b'{"channel": "x", "action": "added"}',
        headers={
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
            "content-type": "application/json",
        },
    )
    assert forged.status_code == 400
    assert httpx.post(f"{world.bot}/giosg/webhook", json={"action": "added"}).status_code == 400
    garbled = httpx.post(
        f"{world.bot}/giosg/webhook",
        content=b"{}",
        headers={"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "x"},
    )
    assert garbled.status_code == 400
    # So is a trigger whose `data` is not signed with the app secret.
    claims = {"app_id": world.app_id, "org_id": str(world.installer.org_id), "inst_id": installation["id"]}
    fake = jwt.encode({**claims, "exp": int(time.time()) + 600}, secrets.token_hex(20), algorithm="HS256")
    refused = httpx.get(f"{world.bot}/giosg/trigger", params={"type": "uninstall", "data": fake})
    assert refused.status_code == 400
    assert world.installation(world.installer.org_id) == stored

    # A redelivery carries the same webhook-id: the bot answers 2xx and does not act twice.
    with world.provider() as provider:
        entries = provider.get(
            world.owned("/webhook_log_entries"),
            params={"status": "successful"},
        ).json()["results"]
        added = next(e for e in entries if e["webhook_id"] and e["action"] == "added")
        again = provider.post(world.owned(f"/webhook_log_entries/{added['id']}/redeliver"))
        assert again.status_code == 202, again.text
        entry_url = world.owned(f"/webhook_log_entries/{again.json()['id']}")
        await eventually(
            lambda: provider.get(entry_url).json()["status"] == "successful", what="the redelivery"
        )
    assert world.status()["duplicates"] == 1
    assert len(world.activity("greeted")) == 1

    # The installer uninstalls: the uninstall trigger (and the `removed` webhook) make the bot forget.
    removed = httpx.delete(
        f"{world.api}/api/v5/orgs/{world.installer.org_id}/app_installations/{installation['id']}",
        headers=world.installer.headers,
    )
    assert removed.status_code == 204, removed.text
    await eventually(lambda: world.activity("forgotten", via="trigger"), what="the uninstall trigger")
    await eventually(lambda: world.activity("forgotten", via="webhook"), what="the `removed` webhook")
    assert world.installation(world.installer.org_id) is None
    assert world.activity("forgotten", via="trigger")[0]["installation_id"] == installation["id"]
    assert not world.activity("error")


def _install_through_the_api(world: World) -> dict[str, Any]:
    created = httpx.post(
        f"{world.api}/api/v5/orgs/{world.installer.org_id}/app_installations",
        json={"app_id": world.app_id},
        headers=world.installer.headers,
    )
    assert created.status_code == 201, created.text
    installation: dict[str, Any] = created.json()
    return installation


def _install_trigger_logged(world: World, installation: dict[str, Any]) -> bool:
    """The service logged the `install` trigger of an API install (a log entry of no webhook)."""
    with world.provider() as provider:
        entries = provider.get(world.owned("/webhook_log_entries")).json()["results"]
    return any(e["webhook_id"] is None and e["resource_id"] == installation["id"] for e in entries)


async def _minted_used_and_forgotten(world: World, installation: dict[str, Any]) -> None:
    """After the API install's trigger, which carries an app user code like the browser's (issue
    26): the bot exchanged it at /identity/token and used the token; uninstalling makes it forget."""
    await eventually(lambda: world.installation(world.installer.org_id), what="the install trigger")
    assert world.installation(world.installer.org_id) == {
        "organization_id": str(world.installer.org_id),
        "installation_id": installation["id"],
        "app_user_id": installation["app_user_id"],
        "source": "identity/token",
    }
    await eventually(lambda: world.activity("token_checked"), what="the bot's call with its token")
    assert [entry["status_code"] for entry in world.activity("token_checked")] == [200]
    with world.provider() as provider:
        tokens = provider.get(world.owned(f"/installations/{installation['id']}/app_user_tokens"))
    assert tokens.status_code == 200 and len(tokens.json()["results"]) == 1
    # The `added` webhook reaches the bot too, and it reads the installation as its app user.
    await eventually(lambda: world.activity("greeted"), what="the bot's reaction to `added`")
    assert [entry["status_code"] for entry in world.activity("greeted")] == [200]

    removed = httpx.delete(
        f"{world.api}/api/v5/orgs/{world.installer.org_id}/app_installations/{installation['id']}",
        headers=world.installer.headers,
    )
    assert removed.status_code == 204
    await eventually(lambda: world.activity("forgotten", via="trigger"), what="the uninstall trigger")
    assert world.installation(world.installer.org_id) is None
    assert not world.activity("error")


async def test_weather_bot_installed_through_the_api_mints_its_app_users_token(world: World) -> None:
    """The service sends the `install` trigger of an API install; the bot mints its app user's
    token on it. Fails (never skips) when the trigger is not sent or not acted on."""
    installation = _install_through_the_api(world)
    await eventually(lambda: _install_trigger_logged(world, installation), what="the install trigger logged")
    await _minted_used_and_forgotten(world, installation)


async def test_weather_bot_acts_once_on_a_repeated_install_trigger(world: World) -> None:
    """The bot's side of a re-sent install trigger, built here by the worker's own functions (the
    `data` JWT and the signature): after the service's own trigger, the same installation again
    is answered without a second token, and a retry of it (same webhook-id) is not acted on."""
    installation = _install_through_the_api(world)
    await eventually(lambda: world.installation(world.installer.org_id), what="the service's install trigger")
    duplicates = world.status()["duplicates"]
    data = encode_trigger_data(
        app_secret=world.app_secret,
        host="127.0.0.1",
        app_id=uuid.UUID(world.app_id),
        organization_id=world.installer.org_id,
        installation_id=uuid.UUID(installation["id"]),
        user_id=world.installer.user.id,
        app_user_id=uuid.UUID(installation["app_user_id"]),
        app_user_code=None,
    )
    headers = signature_headers(
        secret=world.app_secret, message_id=new_message_id(), timestamp=int(time.time()), body=b""
    )
    url = f"{world.bot}/giosg/trigger?type=install&data={data}"
    first = httpx.get(url, headers=headers)
    assert first.status_code == 200, first.text
    # A retry of the same trigger (same webhook-id) is answered and not acted on twice.
    retried = httpx.get(url, headers=headers)
    assert retried.status_code == 200 and retried.text == "Already handled."
    assert world.status()["duplicates"] == duplicates + 1
    await _minted_used_and_forgotten(world, installation)
