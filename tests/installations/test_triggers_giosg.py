"""Server-sent triggers as giosg's own library reads them (issue 26, A and B).

Real processes: the API server and the worker; the app's trigger_url is a receiver on 127.0.0.1.
Each request the receiver got is handed, as a Django request, to `giosgapps_bindings`'
`GiosgappTriggerContext` (the PyPI package giosg gives app developers), which must accept it;
its token and app user code must then work against the API, the way the library uses them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from giosgapps_bindings.django.utils import GiosgappTriggerContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.auth.access_tokens import decode_access_token
from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.kit.db import unit_of_work
from apps_api.platform import service as platform
from apps_api.settings import Settings
from tests.fixtures.live_server import ApiServer, api_server, committed_tenant
from tests.fixtures.webhooks import FAST_ENV, Receiver, Reply, eventually, quiescent, worker
from tests.fixtures.world import delete_organizations

pytestmark = pytest.mark.subprocess


def django_request(path: str) -> Any:
    """The receiver's request as a Django view gets it (minimal settings: the library needs none)."""
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure(ALLOWED_HOSTS=["*"], DEFAULT_CHARSET="utf-8")
    from django.test import RequestFactory

    return RequestFactory().get(path)


def app_body(trigger_url: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Bindings check",
        "description": "Hears its triggers through giosgapps_bindings",
        "is_app_user_required": True,
        "app_user_default_first_name": "Bound",
        "app_user_default_last_name": "Bot",
        "terms_of_service_url": "https://bound.example.com/tos",
        "privacy_policy_url": "https://bound.example.com/privacy",
        "trigger_url": trigger_url,
        "trigger_conditions": ["install", "uninstall"],
        "required_scopes": ["settings"],
        "is_available_to_partners": True,
    }
    body.update(overrides)
    return body


@pytest.fixture
def server(settings: Settings) -> Iterator[ApiServer]:
    with api_server() as running:
        yield running


async def test_giosgapps_bindings_accept_the_api_install_and_the_owner_uninstall(
    server: ApiServer, engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await committed_tenant(engine, "Bindings owner")
    installer = await committed_tenant(engine, "Bindings installer", features=["apps"])
    async with AsyncSession(engine) as session, unit_of_work(session):
        await platform.add_partnership(session=session, a=owner.org_id, b=installer.org_id)
    receiver = Receiver()
    try:
        owner_api = httpx.Client(base_url=server.url, headers=owner.headers)
        installer_api = httpx.Client(base_url=server.url, headers=installer.headers)
        created = owner_api.post(
            f"/api/v5/orgs/{owner.org_id}/owned_apps",
            json=app_body(receiver.url.replace("/hook", "/trigger")),
        )
        assert created.status_code == 201, created.text
        app = created.json()
        with worker():
            installed = installer_api.post(
                f"/api/v5/orgs/{installer.org_id}/app_installations", json={"app_id": app["id"]}
            )
            assert installed.status_code == 201, installed.text
            installation = installed.json()
            await eventually(lambda: len(receiver.requests) >= 1, what="install trigger")

            # giosg's library accepts the install trigger: type, data, token and redirect_uri.
            install = GiosgappTriggerContext(django_request(receiver.requests[0].path), app["secret"])
            assert install.type == "install"
            assert (install.org_id, install.inst_id, install.app_id) == (
                str(installer.org_id),
                installation["id"],
                app["id"],
            )
            assert install.user_id == str(installer.user.id)
            assert install.app_user_id == installation["app_user_id"] is not None
            # The installed app's page in the console, absolute on the service's origin.
            assert install.redirect_uri == f"{server.url}/console/installed#installation-{installation['id']}"

            # Its token acts as the installer within the installation's scopes (GIOSGAPP) ...
            as_installer = installer_api.get(
                f"/api/v5/orgs/{installer.org_id}/installed_apps",
                headers={"Authorization": install.get_auth_header_content()},
            )
            assert as_installer.status_code == 200, as_installer.text
            claims = decode_access_token(install.access_token or "", secret_key=settings.secret_key)
            assert claims is not None
            assert (claims["user_id"], claims["org_id"]) == (str(installer.user.id), str(installer.org_id))
            assert claims["perms"] == ["settings"]  # the installer's permissions ∩ allowed_scopes
            # ... and the library exchanges its app user code at POST /identity/token.
            monkeypatch.setenv("SERVICE_GIOSG_COM", server.url)
            persistent = install.exchange_persistent_access_token()
            assert (persistent.user_id, persistent.organization_id, persistent.app_id) == (
                installation["app_user_id"],
                str(installer.org_id),
                app["id"],
            )
            as_app_user = httpx.get(
                f"{server.url}/api/v5/orgs/{installer.org_id}/installed_apps",
                headers={"Authorization": f"{persistent.token_type} {persistent.access_token}"},
            )
            assert as_app_user.status_code == 200, as_app_user.text

            # The owner uninstalls its app from the installer's organization.
            removed = owner_api.delete(
                f"/api/v5/orgs/{owner.org_id}/owned_apps/{app['id']}/installations/{installer.org_id}"
            )
            assert removed.status_code == 204, removed.text
            await eventually(lambda: len(receiver.requests) >= 2, what="uninstall trigger")
            await eventually(
                lambda: quiescent(engine, [owner.org_id, installer.org_id], [uuid.UUID(app["id"])]),
                what="triggers settled",
            )
        uninstall = GiosgappTriggerContext(django_request(receiver.requests[1].path), app["secret"])
    finally:
        receiver.close()
        await delete_organizations(engine, [owner.org_id, installer.org_id])

    assert uninstall.type == "uninstall"
    assert (uninstall.org_id, uninstall.inst_id) == (str(installer.org_id), installation["id"])
    # The owner's user is not a user of the installer's organization: no user acted there.
    assert uninstall.user_id is None
    datas = [
        decode_trigger_data(parse_qs(urlsplit(r.path).query)["data"][0], app_secret=app["secret"])
        for r in receiver.requests
    ]
    # `sub` is the configured public host (unset here: the fallback), the same on every trigger,
    # not the Host header of the request that caused it; giosg's room and domain claims are there.
    assert [data["sub"] for data in datas] == ["localhost", "localhost"]
    assert all(data["room_id"] is None and data["domain_host"] is None for data in datas)
    assert [data["user_id"] for data in datas] == [str(installer.user.id), None]


@pytest.mark.slow
async def test_trigger_retries_follow_the_retry_schedule(engine: AsyncEngine, settings: Settings) -> None:
    """FAST_ENV's schedule has three delays: four attempts, then the trigger has failed."""
    owner = await committed_tenant(engine, "Retry owner")
    receiver = Receiver(lambda _: Reply(503))
    try:
        with api_server(**FAST_ENV) as server:
            api = httpx.Client(base_url=server.url, headers=owner.headers)
            created = api.post(
                f"/api/v5/orgs/{owner.org_id}/owned_apps",
                json=app_body(receiver.url.replace("/hook", "/trigger"), is_app_user_required=False),
            )
            assert created.status_code == 201, created.text
            app = created.json()
            with worker():
                installed = api.post(
                    f"/api/v5/orgs/{owner.org_id}/app_installations", json={"app_id": app["id"]}
                )
                assert installed.status_code == 201, installed.text
                await eventually(
                    lambda: quiescent(engine, [owner.org_id], [uuid.UUID(app["id"])]), what="trigger failed"
                )
            logs = api.get(f"/api/v5/orgs/{owner.org_id}/owned_apps/{app['id']}/webhook_log_entries")
    finally:
        receiver.close()
        await delete_organizations(engine, [owner.org_id])

    assert len(receiver.requests) == len(FAST_ENV["APPS_API_WEBHOOK_RETRY_SCHEDULE"].split(",")) + 1 == 4
    assert logs.status_code == 200, logs.text
    assert sorted(entry["retry_index"] for entry in logs.json()["results"]) == [0, 1, 2, 3]
    assert {entry["status"] for entry in logs.json()["results"]} == {"failed"}
