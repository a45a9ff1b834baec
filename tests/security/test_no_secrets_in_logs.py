"""No secret ever reaches a log: a full flow with real processes, every log at DEBUG, then a search.

Captured: the CLI's stderr (admin commands), the uvicorn API server's output (root logger at
DEBUG, uvicorn's access log included) and the arq worker's output (DEBUG), while the flow
creates an API token with the CLI, an app (secret), logs in to the install web flow with a
password, installs (app user, trigger JWTs, app user code), exchanges the code at
/identity/token, calls the API as GIOSGAPP, gets a signed webhook and an uninstall trigger.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.delivery.matching import INSTALLATIONS_PATTERN
from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.settings import Settings
from tests.fixtures.live_server import ROOT, ApiServer, api_server
from tests.fixtures.webhooks import Receiver, eventually, worker
from tests.fixtures.world import delete_organizations

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

PASSWORD = "Tr0ub4dor&3-horse-battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DEBUG = {"APPS_API_LOG_LEVEL": "DEBUG"}


def cli(*args: str, logs: list[str]) -> dict[str, str]:
    """Run an admin command; its stdout is the result (shown once), its stderr is a log."""
    done = subprocess.run(
        [sys.executable, "-m", "apps_api", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__("os").environ, **DEBUG},
        check=True,
    )
    logs.append(done.stderr)
    result: dict[str, str] = json.loads(done.stdout)
    return result


@pytest.fixture
def server(settings: Settings) -> Iterator[ApiServer]:
    with api_server(**DEBUG) as running:
        yield running


async def test_a_full_flow_logs_no_secret(server: ApiServer, engine: AsyncEngine, settings: Settings) -> None:
    logs: list[str] = []
    secrets: dict[str, str] = {"password": PASSWORD}
    organization = cli(
        "admin", "create-org", "--name", "Secretive", "--features", "apps,app_provider", logs=logs
    )
    org_id = organization["id"]
    receiver = Receiver()
    try:
        email = f"secretive-{uuid.uuid4().hex[:8]}@example.com"
        user = cli(
            "admin", "create-user", "--org", org_id, "--permissions", "settings",
            "--email", email, "--password", PASSWORD, logs=logs,
        )  # fmt: skip
        secrets["API token"] = cli("admin", "create-token", "--user", user["id"], logs=logs)["token"]
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {secrets['API token']}"})
        trigger_url = receiver.url.replace("/hook", "/trigger")
        created = api.post(
            f"/api/v5/orgs/{org_id}/owned_apps",
            json={
                "name": "Secretive app",
                "description": "Keeps secrets",
                "is_app_user_required": True,
                "app_user_default_first_name": "Quiet",
                "app_user_default_last_name": "Bot",
                "terms_of_service_url": "https://secretive.example.com/tos",
                "privacy_policy_url": "https://secretive.example.com/privacy",
                "trigger_url": trigger_url,
                "trigger_conditions": ["install", "uninstall"],
                # The app principals below need it, and the installed_apps channel too.
                "required_scopes": ["settings"],
            },
        )
        assert created.status_code == 201, created.text
        app = created.json()
        secrets["app secret"] = app["secret"]
        hook = api.post(
            f"/api/v5/orgs/{org_id}/owned_apps/{app['id']}/webhooks",
            json={
                "endpoint_url": receiver.url,
                "channel_subscriptions": [
                    {
                        "channel_pattern": "/api/v5/orgs/{organization_id}/installed_apps",
                        "is_additions_subscribed": True,
                        "is_changes_subscribed": True,
                        "is_removals_subscribed": True,
                    },
                    {
                        "channel_pattern": INSTALLATIONS_PATTERN,
                        "is_additions_subscribed": True,
                        "is_changes_subscribed": True,
                        "is_removals_subscribed": True,
                    },
                ],
            },
        )
        assert hook.status_code == 201, hook.text

        with worker(**DEBUG) as running_worker:
            # The install web flow, as a browser: login with the password, confirm, install.
            browser = httpx.Client(base_url=server.url)
            install_path = f"/apps/{app['id']}/install"
            page = browser.get(install_path, params={"next": "/settings"})
            login = browser.post(
                f"{install_path}/login",
                data={
                    "csrf_token": CSRF.findall(page.text)[0],
                    "next": "/settings",
                    "email": email,
                    "password": PASSWORD,
                },
            )
            assert login.status_code == 303, login.text
            secrets["session cookie"] = browser.cookies.get("apps_api_install_session", path="/apps/")
            confirm = browser.get(install_path, params={"next": "/settings"})
            assert confirm.status_code == 200, confirm.text
            installed = browser.post(
                install_path, data={"csrf_token": CSRF.findall(confirm.text)[-1], "next": "/settings"}
            )
            assert installed.status_code == 303, installed.text
            query = parse_qs(urlsplit(installed.headers["location"]).query)
            secrets["trigger data JWT"] = query["data"][0]
            secrets["trigger access token"] = query["token"][0]
            claims = decode_trigger_data(query["data"][0], app_secret=app["secret"])
            secrets["app user code"] = claims["app_user_code"]

            exchanged = httpx.post(
                f"{server.url}/identity/token",
                data={
                    "grant_type": "authorization_code",
                    "code": claims["app_user_code"],
                    "client_id": app["id"],
                    "client_secret": app["secret"],
                },
            )
            assert exchanged.status_code == 200, exchanged.text
            secrets["app user API token"] = exchanged.json()["access_token"]
            as_app = httpx.get(
                f"{server.url}/api/v5/orgs/{org_id}/installed_apps",
                headers={"Authorization": f"GIOSGAPP {query['token'][0]} {app['secret']}"},
            )
            assert as_app.status_code == 200 and as_app.json()["results"][0]["id"] == app["id"]
            as_app_user = httpx.get(
                f"{server.url}/api/v5/orgs/{org_id}/installed_apps",
                headers={"Authorization": f"Token {exchanged.json()['access_token']}"},
            )
            assert as_app_user.status_code == 200  # the app user, within the installation's scopes

            await eventually(lambda: len([r for r in receiver.requests if r.method == "POST"]) >= 2)
            # Uninstalling sends the uninstall trigger (a GET with a `data` JWT) through the worker.
            installation_id = claims["inst_id"]
            removed = api.delete(f"/api/v5/orgs/{org_id}/app_installations/{installation_id}")
            assert removed.status_code == 204
            await eventually(
                lambda: any(r.method == "GET" for r in receiver.requests), what="uninstall trigger"
            )
            # ...and the `removed` event on the owner's installations channel.
            await eventually(lambda: len([r for r in receiver.requests if r.method == "POST"]) >= 3)
            worker_output = running_worker.output()

        for request in receiver.requests:
            if request.method == "POST":
                secrets[f"signature {request.headers['webhook-id']}"] = request.headers["webhook-signature"]
                body = json.loads(request.body)
                if "app_user_auth" in body:
                    secrets[f"app_user_auth {request.headers['webhook-id']}"] = body["app_user_auth"][
                        "access_token"
                    ]
            else:
                secrets["uninstall trigger data JWT"] = parse_qs(urlsplit(request.path).query)["data"][0]
        assert "uninstall trigger data JWT" in secrets and any(k.startswith("app_user_auth") for k in secrets)
    finally:
        receiver.close()
        server_output = server.output()
        await delete_organizations(engine, [uuid.UUID(org_id)])

    captured = "\n".join([*logs, server_output, worker_output])
    # The logs did capture the flow, at DEBUG, from all three kinds of process.
    assert "DEBUG" in captured and "uvicorn.access" in server_output
    assert f"/apps/{app['id']}/install" in server_output and "/identity/token" in server_output
    assert "attempt 1: ok" in worker_output and "deliver_outbound" in worker_output
    leaked = {name for name, value in secrets.items() if value and value in captured}
    # Also the halves of `Token`/`GIOSGAPP` credentials and the signature's base64 part.
    for name, value in list(secrets.items()):
        if name.startswith("signature") and value.split(",", 1)[1] in captured:
            leaked.add(name)
    assert not leaked, f"secrets in the logs: {sorted(leaked)}"
