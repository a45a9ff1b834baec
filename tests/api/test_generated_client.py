"""A Python client generated from openapi.snapshot.json drives the real API, as an integrator's would.

`openapi-python-client` (pinned in the `test` extra) generates the client into a temporary
folder; the flow then runs against a live server and worker over 127.0.0.1: create an owned
app, PATCH one attribute, PUT, install from a second organization, page through a list,
create a webhook, receive its delivery and list its log entries. The document itself must
pass `openapi-spec-validator`.
"""

from __future__ import annotations

import datetime
import importlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.matching import INSTALLATIONS_PATTERN
from apps_api.kit.db import unit_of_work
from apps_api.platform.service import add_partnership
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant
from tests.fixtures.live_server import ROOT, ApiServer, api_server, committed_tenant
from tests.fixtures.webhooks import Receiver, eventually, worker
from tests.fixtures.world import delete_organizations

SNAPSHOT = ROOT / "openapi.snapshot.json"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "apps_api_generated_client"


def test_the_snapshot_is_a_valid_openapi_document() -> None:
    from openapi_spec_validator import validate

    validate(json.loads(SNAPSHOT.read_text()))


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client generated from the snapshot, imported from a temporary folder."""
    generator = GENERATOR if GENERATOR.exists() else shutil.which("openapi-python-client")
    if generator is None:
        pytest.skip("openapi-python-client is not installed: pip install -e '.[test]'")
    folder = tmp_path_factory.mktemp("generated-client")
    config = folder / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: the code is used as generated
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(SNAPSHOT),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Any warning means a part of the document the generator could not turn into code.
    assert "Warning" not in output, output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture
def server(settings: Settings) -> Iterator[ApiServer]:
    with api_server(APPS_API_LOG_LEVEL="WARNING") as running:
        yield running


@dataclass
class Orgs:
    owner: Tenant
    installer: Tenant


@pytest.fixture
async def orgs(engine: AsyncEngine) -> AsyncIterator[Orgs]:
    """Two committed partner organizations (the server is another process); deleted afterwards."""
    owner = await committed_tenant(engine, "Generated client owner")
    installer = await committed_tenant(engine, "Generated client installer", features=["apps"])
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, unit_of_work(session):
            await add_partnership(session=session, a=owner.org_id, b=installer.org_id)
        yield Orgs(owner=owner, installer=installer)
    finally:
        await delete_organizations(engine, [owner.org_id, installer.org_id])


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


class _Tag:
    """The operations of one tag of the generated client: `tag.create_owned_app.sync(...)`."""

    def __init__(self, package: ModuleType, tag: str) -> None:
        self._prefix = f"{package.__name__}.api.{tag}"

    def __getattr__(self, operation: str) -> Any:
        return importlib.import_module(f"{self._prefix}.{operation}")


def _cursor(next_url: str) -> str:
    return parse_qs(urlsplit(next_url).query)["cursor"][0]


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_generated_client_drives_the_api(
    client_package: ModuleType, server: ApiServer, orgs: Orgs
) -> None:
    models = _module(client_package, "models")
    owned_apps = _Tag(client_package, "owned_apps")
    installations = _Tag(client_package, "app_installations")
    webhooks = _Tag(client_package, "webhooks")
    log_entries = _Tag(client_package, "webhook_log_entries")
    unset = _module(client_package, "types").UNSET

    def client(tenant: Tenant) -> Any:
        return client_package.AuthenticatedClient(
            base_url=server.url, token=tenant.token, prefix="Token", raise_on_unexpected_status=True
        )

    owner, installer = client(orgs.owner), client(orgs.installer)
    owner_id = orgs.owner.org_id

    # Create: the required attributes and a few optional ones, enums as the generated types.
    created = owned_apps.create_owned_app.sync(
        owner_id,
        client=owner,
        body=models.OwnedAppInput(
            name="Weather bot",
            description="Answers questions about the weather.",
            is_app_user_required=True,
            app_user_default_first_name="Weather",
            app_user_default_last_name="Bot",
            terms_of_service_url="https://bot.example.com/terms",
            privacy_policy_url="https://bot.example.com/privacy",
            is_available_to_partners=True,
            trigger_conditions=[models.OwnedAppInputTriggerConditionsItem.INSTALL],
            required_scopes=[models.OwnedAppInputRequiredScopesItem.REPORTS],
        ),
    )
    assert isinstance(created, models.OwnedApp), created
    assert isinstance(created.id, uuid.UUID) and isinstance(created.owned_by_organization_id, uuid.UUID)
    assert isinstance(created.created_at, datetime.datetime) and created.created_at.tzinfo is not None
    assert created.trigger_conditions == [models.OwnedAppTriggerConditionsItem.INSTALL]
    assert created.is_available_to_partners is True and created.secret

    # PATCH one attribute: the request carries only it, so nothing else changes.
    patched = owned_apps.update_owned_app.sync(
        owner_id, created.id, client=owner, body=models.OwnedAppPatch(description="Now with forecasts.")
    )
    assert isinstance(patched, models.OwnedApp), patched
    assert patched.description == "Now with forecasts."
    unchanged = ("name", "is_app_user_required", "app_user_default_first_name", "terms_of_service_url")
    unchanged += ("privacy_policy_url", "is_available_to_partners", "trigger_conditions", "required_scopes")
    for attribute in unchanged:
        assert getattr(patched, attribute) == getattr(created, attribute), attribute
    assert patched.updated_at >= created.updated_at

    # PUT replaces: the required attributes again; an optional one left out returns to its default.
    replaced = owned_apps.replace_owned_app.sync(
        owner_id,
        created.id,
        client=owner,
        body=models.OwnedAppInput(
            name="Weather bot 2",
            description="Forecasts.",
            is_app_user_required=True,
            app_user_default_first_name="Weather",
            app_user_default_last_name="Bot",
            terms_of_service_url="https://bot.example.com/terms/v2",
            privacy_policy_url="https://bot.example.com/privacy/v2",
            is_available_to_partners=True,
            required_scopes=[models.OwnedAppInputRequiredScopesItem.REPORTS],
        ),
    )
    assert isinstance(replaced, models.OwnedApp), replaced
    assert (replaced.name, replaced.terms_of_service_url) == (
        "Weather bot 2",
        "https://bot.example.com/terms/v2",
    )
    assert replaced.is_available_to_partners is True
    assert replaced.app_user_default_first_name == "Weather"
    # Left out of the PUT: back to the defaults.
    assert replaced.trigger_conditions == []

    # A webhook on the owner's installations channel, then an install from the partner.
    receiver = Receiver()
    try:
        webhook = webhooks.create_webhook.sync(
            owner_id,
            created.id,
            client=owner,
            body=models.WebhookCreate(
                endpoint_url=receiver.url,
                channel_subscriptions=[
                    models.ChannelSubscriptionInput(
                        channel_pattern=INSTALLATIONS_PATTERN,
                        is_additions_subscribed=True,
                        is_changes_subscribed=False,
                        is_removals_subscribed=True,
                    )
                ],
            ),
        )
        assert isinstance(webhook, models.Webhook), webhook
        assert isinstance(webhook.id, uuid.UUID) and isinstance(webhook.created_at, datetime.datetime)

        with worker():
            installation = installations.install_app.sync(
                orgs.installer.org_id,
                client=installer,
                body=models.AppInstallationInput(
                    app_id=created.id, app_user=models.AppUserInput(first_name="Sunny")
                ),
            )
            assert isinstance(installation, models.AppInstallation), installation
            assert installation.app_id == created.id and isinstance(installation.app_user_id, uuid.UUID)
            assert installation.allowed_scopes == [models.AppInstallationAllowedScopesItem.REPORTS]

            await eventually(lambda: len(receiver.requests) >= 1, what="the webhook delivery")
            delivery = json.loads(receiver.requests[0].body)
            assert receiver.requests[0].headers.get("webhook-id")

            def successful_entries() -> list[Any]:
                page = log_entries.list_webhook_log_entries.sync(
                    owner_id,
                    created.id,
                    client=owner,
                    webhook_id=webhook.id,
                    status=models.ListWebhookLogEntriesStatusType0.SUCCESSFUL,
                )
                assert isinstance(page, models.PageWebhookLogEntry), page
                return list(page.results)

            await eventually(lambda: bool(successful_entries()), what="a successful log entry")
        entry = successful_entries()[0]
        assert entry.webhook_id == webhook.id and isinstance(entry.id, uuid.UUID)
        assert entry.action == models.WebhookLogEntryAction.ADDED
        assert entry.status == models.WebhookLogEntryStatus.SUCCESSFUL
        assert entry.response_status_code == 200
        assert isinstance(entry.created_at, datetime.datetime)
        assert isinstance(entry.completed_at, datetime.datetime)
        assert entry.channel == INSTALLATIONS_PATTERN.replace("{app_organization_id}", str(owner_id)).replace(
            "{app_id}", str(created.id)
        )
        assert delivery  # the receiver got a JSON body
    finally:
        receiver.close()

    # Two more apps, then the owner's list two at a time, following `next` to the end.
    for name in ("Second app", "Third app"):
        more = owned_apps.create_owned_app.sync(
            owner_id,
            client=owner,
            body=models.OwnedAppInput(
                name=name,
                description="Another app.",
                is_app_user_required=False,
                terms_of_service_url="https://bot.example.com/terms",
                privacy_policy_url="https://bot.example.com/privacy",
            ),
        )
        assert isinstance(more, models.OwnedApp), more
    seen: list[str] = []
    pages = 0
    cursor: Any = unset
    while True:
        page = owned_apps.list_owned_apps.sync(owner_id, client=owner, page_size=2, cursor=cursor)
        assert isinstance(page, models.PageOwnedApp), page
        pages += 1
        assert 1 <= len(page.results) <= 2
        seen += [app.name for app in page.results]
        if not isinstance(page.next_, str):
            break
        cursor = _cursor(page.next_)
    assert pages == 2
    assert seen == ["Third app", "Second app", "Weather bot 2"]
