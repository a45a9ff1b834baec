"""Triggers as giosg's integrations read them (issue 12, points 5 and 11a).

Real processes: the API server (uvicorn) and the worker, a receiver on 127.0.0.1. An install
through the API, where no browser follows a redirect, gets its `install` trigger from the
worker, like `uninstall`; the receiver decodes `data` the way giosg's own trigger parser does:
every claim indexed, none read with `.get`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.settings import Settings
from tests.fixtures.live_server import ApiServer, api_server, committed_tenant
from tests.fixtures.webhooks import Receiver, Reply, eventually, quiescent, worker
from tests.fixtures.world import delete_organizations

pytestmark = pytest.mark.subprocess


def integrator_parse(data: str, app_secret: str) -> dict[str, Any]:
    """What an integration does with `data`: verify it with the app secret, index every claim."""
    payload = jwt.decode(data, app_secret, algorithms=["HS256"], options={"verify_iss": False})
    return {
        "sub": payload["sub"],
        "user_id": payload["user_id"],
        "org_id": payload["org_id"],
        "chat_id": payload["chat_id"],
        "visitor_id": payload["visitor_id"],
        "room_id": payload["room_id"],
        "domain_host": payload["domain_host"],
        "inst_id": payload["inst_id"],
        "app_id": payload["app_id"],
        "app_user_id": payload["app_user_id"],
        "app_user_code": payload["app_user_code"],
        "iat": payload["iat"],
        "exp": payload["exp"],
    }


@pytest.fixture
def server(settings: Settings) -> Iterator[ApiServer]:
    with api_server() as running:
        yield running


async def test_an_api_install_sends_the_install_trigger(
    server: ApiServer, engine: AsyncEngine, settings: Settings
) -> None:
    owner = await committed_tenant(engine, "Trigger owner")
    # The first attempt fails: the trigger is retried and logged like a webhook; a redirect
    # (the trigger URL is a page) counts as delivered.
    receiver = Receiver(lambda n: Reply(503) if n == 0 else Reply(302, b"", {"Location": "/welcome"}))
    try:
        api = httpx.Client(base_url=server.url, headers=owner.headers)
        created = api.post(
            f"/api/v5/orgs/{owner.org_id}/owned_apps",
            json={
                "name": "Triggered",
                "description": "Hears installs",
                "is_app_user_required": True,
                "app_user_default_first_name": "Trigger",
                "app_user_default_last_name": "Bot",
                "terms_of_service_url": "https://triggered.example.com/tos",
                "privacy_policy_url": "https://triggered.example.com/privacy",
                "trigger_url": receiver.url.replace("/hook", "/trigger?source=apps"),
                "trigger_conditions": ["install", "uninstall"],
            },
        )
        assert created.status_code == 201, created.text
        app = created.json()
        with worker():
            installed = api.post(f"/api/v5/orgs/{owner.org_id}/app_installations", json={"app_id": app["id"]})
            assert installed.status_code == 201, installed.text
            installation = installed.json()
            await eventually(lambda: len(receiver.requests) >= 2, what="install trigger retried")
            await eventually(
                lambda: quiescent(engine, [owner.org_id], [uuid.UUID(app["id"])]), what="trigger settled"
            )
            removed = api.delete(f"/api/v5/orgs/{owner.org_id}/app_installations/{installation['id']}")
            assert removed.status_code == 204
            await eventually(lambda: len(receiver.requests) >= 3, what="uninstall trigger")
            await eventually(
                lambda: quiescent(engine, [owner.org_id], [uuid.UUID(app["id"])]), what="all settled"
            )
        logs = api.get(f"/api/v5/orgs/{owner.org_id}/owned_apps/{app['id']}/webhook_log_entries")
    finally:
        receiver.close()
        await delete_organizations(engine, [owner.org_id])

    assert [r.method for r in receiver.requests] == ["GET", "GET", "GET"]
    queries = [parse_qs(urlsplit(r.path).query) for r in receiver.requests]
    assert [urlsplit(r.path).path for r in receiver.requests] == ["/trigger"] * 3
    assert [q["type"] for q in queries] == [["install"], ["install"], ["uninstall"]]
    assert all(q["source"] == ["apps"] for q in queries)
    install = integrator_parse(queries[1]["data"][0], app["secret"])
    assert install == {
        "sub": "localhost",  # the configured public host (unset: the fallback), not the Host header
        "user_id": str(owner.user.id),
        "org_id": str(owner.org_id),
        "chat_id": None,
        "visitor_id": None,
        "room_id": None,
        "domain_host": None,
        "inst_id": installation["id"],
        "app_id": app["id"],
        "app_user_id": installation["app_user_id"],
        "app_user_code": install[
            "app_user_code"
        ],  # minted per attempt (tests/installations/test_triggers_giosg.py)
        "iat": install["iat"],
        "exp": install["exp"],
    }
    assert installation["app_user_id"] is not None and install["exp"] > install["iat"]
    # The retry carries a code and a token of its own, minted when it was sent.
    first = integrator_parse(queries[0]["data"][0], app["secret"])
    assert (
        first["app_user_code"]
        and install["app_user_code"]
        and first["app_user_code"] != install["app_user_code"]
    )
    assert queries[0]["token"] != queries[1]["token"] and "token" not in queries[2]
    uninstall = integrator_parse(queries[2]["data"][0], app["secret"])
    assert (uninstall["inst_id"], uninstall["chat_id"], uninstall["visitor_id"]) == (
        installation["id"],
        None,
        None,
    )
    # Another app's secret does not verify it.
    with pytest.raises(jwt.InvalidSignatureError):
        integrator_parse(queries[1]["data"][0], "0123456789abcdef" * 4)
    assert logs.status_code == 200, logs.text
    entries = sorted(logs.json()["results"], key=lambda entry: (entry["created_at"], entry["retry_index"]))
    assert [(e["action"], e["retry_index"], e["status"], e["response_status_code"]) for e in entries] == [
        ("added", 0, "failed", 503),
        ("added", 1, "successful", 302),
        ("removed", 0, "successful", 302),
    ]
