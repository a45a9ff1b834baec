"""Issue 13, item 6: app secrets are URL-safe (64 hex) and rotatable with a grace period."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook as StandardWebhook

from apps_api.apps.service import rotate_secret
from apps_api.auth.access_tokens import encode_access_token
from apps_api.auth.service import Principal
from apps_api.delivery.triggers.tokens import decode_trigger_data
from apps_api.installations.service import uninstall
from apps_api.models import App, AppInstallation, Event
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.apps import app_payload, owned_url
from tests.fixtures.delivery import World, chat_event, sub
from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.installflow import (
    install_directly,
    issue_code,
    make_bot_app,
    make_installer,
    token_form,
)
from tests.fixtures.webhooks import receivers, worker

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _rotate_url(tenant: Tenant, app_id: Any) -> str:
    return owned_url(tenant, app_id, "/rotate_secret")


async def test_new_secrets_are_64_hex_and_standard_webhooks_secrets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert HEX64.match(secret)
    # The signing key is the base64 decoding of the secret, as the reference library reads it.
    webhook = StandardWebhook(secret)
    now = utcnow().replace(microsecond=0)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp()))}
    headers["webhook-signature"] = webhook.sign("msg_1", now, "{}")
    assert webhook.verify(b"{}", headers) == {}


async def test_rotate_secret_endpoint(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    created = (await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)).json()
    old = created["secret"]
    before = utcnow()
    rotated = await client.post(_rotate_url(tenant, created["id"]), headers=tenant.headers)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert set(body) == set(created) and body["id"] == created["id"]
    assert HEX64.match(body["secret"]) and body["secret"] != old
    app = await session.get(App, uuid.UUID(created["id"]), populate_existing=True)
    assert app is not None and app.previous_secret == old and app.previous_secret_expires_at is not None
    # The default grace period is one day.
    assert (
        before + timedelta(seconds=86400)
        <= app.previous_secret_expires_at
        <= utcnow() + timedelta(seconds=86400)
    )
    # GET shows the new secret.
    got = await client.get(owned_url(tenant, created["id"]), headers=tenant.headers)
    assert got.json()["secret"] == body["secret"]
    # A `changed` on the owner's webhooks channel of the app, without any secret in it.
    channel = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{created['id']}/webhooks"
    (event,) = (await session.execute(select(Event).where(Event.channel == channel))).scalars()
    assert event.action == "changed" and event.resource_id == created["id"]
    assert old not in str(event.resource) and body["secret"] not in str(event.resource)
    assert event.resource["previous_secret_expires_at"] is not None

    for bad in (-1, 604801, "soon", None):
        refused = await client.post(
            _rotate_url(tenant, created["id"]), json={"grace_period_seconds": bad}, headers=tenant.headers
        )
        assert refused.status_code == 400 and list(refused.json()["errors"]) == ["grace_period_seconds"], bad
    zero = await client.post(
        _rotate_url(tenant, created["id"]), json={"grace_period_seconds": 0}, headers=tenant.headers
    )
    assert zero.status_code == 200
    await session.refresh(app)
    assert app.previous_secret is None and app.previous_secret_expires_at is None


async def test_rotation_is_for_the_owner_with_settings_only(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = (await client.post(owned_url(tenant), json=app_payload(), headers=tenant.headers)).json()
    foreign = await client.post(
        owned_url(other_tenant, created["id"], "/rotate_secret"), headers=other_tenant.headers
    )
    assert foreign.status_code == 404
    wrong_org = await client.post(_rotate_url(tenant, created["id"]), headers=other_tenant.headers)
    assert wrong_org.status_code == 403
    after = await client.get(owned_url(tenant, created["id"]), headers=tenant.headers)
    assert after.json()["secret"] == created["secret"]


async def _rotate(session: AsyncSession, owner: Tenant, app: App, grace: int) -> App:
    principal = Principal(user=owner.user, organization=owner.organization)
    return await rotate_secret(session=session, principal=principal, app=app, grace_period_seconds=grace)


async def test_previous_secret_authenticates_giosgapp_and_token_exchange_during_grace_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    old = app.secret
    token = encode_access_token(
        secret_key=settings.secret_key,
        user_id=installer.user.id,
        organization_id=installer.org_id,
        app_id=app.id,
        installation_id=installation.id,
    )

    async def giosgapp(secret: str) -> int:
        response = await client.get(
            "/api/v5/public_apps", headers={"Authorization": f"GIOSGAPP {token} {secret}"}
        )
        return response.status_code

    async def exchange(secret: str) -> httpx.Response:
        code = await issue_code(session, installation)
        return await client.post("/identity/token", data=token_form(app, code, client_secret=secret))

    rotated = await _rotate(session, owner, app, 3600)
    new = rotated.secret
    assert new != old
    assert await giosgapp(new) == 200 and await giosgapp(old) == 200
    assert (await exchange(old)).status_code == 200 and (await exchange(new)).status_code == 200

    # The grace period over: only the new secret.
    rotated.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    await session.flush()
    assert await giosgapp(old) == 401 and await giosgapp(new) == 200
    assert (await exchange(old)).json()["error"] == "invalid_client"

    # Grace 0 ends the previous secret at once.
    again = await _rotate(session, owner, rotated, 0)
    assert await giosgapp(new) == 401 and await giosgapp(again.secret) == 200
    assert (await exchange(new)).json()["error"] == "invalid_client"
    assert (await exchange(again.secret)).status_code == 200


@pytest.mark.subprocess
async def test_webhooks_carry_both_signatures_during_grace_and_triggers_use_the_new_secret(
    world: World,
) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    with receivers(None, None) as (receiver, triggers):
        app = await world.app(provider, trigger_conditions=["uninstall"], trigger_url=triggers.url)
        old = app.secret
        await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        installation = await world.install(org, app)

        async def rotate(session: AsyncSession, grace: int) -> str:
            current = await session.get(App, app.id)
            assert current is not None
            return (await _rotate(session, provider, current, grace)).secret

        new = await world.run(lambda s: rotate(s, 3600))
        with worker():
            await world.publish(chat_event(org.org_id, resource_id="during-grace"))
            await world.settle()

            async def uninstall_it(session: AsyncSession) -> None:
                current = await session.get(AppInstallation, installation.id)
                assert current is not None
                await uninstall(session=session, installation=current, actor_user_id=org.user.id)

            await world.run(uninstall_it)
            await world.settle()
            newest = await world.run(lambda s: rotate(s, 0))
            await world.install(org, app)
            await world.publish(chat_event(org.org_id, resource_id="after-grace-0"))
            await world.settle()

    chats = [r for r in receiver.requests if b"/chats" in r.body]
    during, after = chats
    signatures = during.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # A receiver with either secret verifies with the reference library.
    assert StandardWebhook(new).verify(during.body, during.headers)["resource_id"] == "during-grace"
    assert StandardWebhook(old).verify(during.body, during.headers)["resource_id"] == "during-grace"
    # After a rotation with grace 0: one signature, the old secrets no longer verify.
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert StandardWebhook(newest).verify(after.body, after.headers)["resource_id"] == "after-grace-0"
    for stale in (old, new):
        with pytest.raises(Exception, match="signature"):
            StandardWebhook(stale).verify(after.body, after.headers)
    # The uninstall trigger's `data` JWT is signed with the new secret, and its request carries
    # both signatures too.
    (trigger,) = [r for r in triggers.requests if "type=uninstall" in r.path]
    data = parse_qs(urlsplit(trigger.path).query)["data"][0]
    assert decode_trigger_data(data, app_secret=new)["app_id"] == str(app.id)
    with pytest.raises(Exception, match="Signature"):
        decode_trigger_data(data, app_secret=old)
    assert len(trigger.headers["webhook-signature"].split(" ")) == 2


@pytest.mark.subprocess
async def test_pending_trigger_of_an_app_rotated_since_is_signed_with_the_new_secret(world: World) -> None:
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    with receivers(None) as (triggers,):
        app = await world.app(provider, trigger_conditions=["uninstall"], trigger_url=triggers.url)
        installation = await world.install(org, app)

        async def uninstall_then_rotate(session: AsyncSession) -> str:
            current = await session.get(AppInstallation, installation.id)
            assert current is not None
            await uninstall(session=session, installation=current, actor_user_id=org.user.id)
            rotated_app = await session.get(App, app.id)
            assert rotated_app is not None
            return (await _rotate(session, provider, rotated_app, 0)).secret

        new = await world.run(uninstall_then_rotate)  # scheduled with the old secret, not yet sent
        with worker():
            await world.settle()
    (trigger,) = triggers.requests
    data = parse_qs(urlsplit(trigger.path).query)["data"][0]
    assert decode_trigger_data(data, app_secret=new)["app_id"] == str(app.id)
    with pytest.raises(Exception, match="Signature"):
        decode_trigger_data(data, app_secret=app.secret)


@pytest.mark.subprocess
async def test_a_previous_secret_past_its_grace_signs_nothing(world: World) -> None:
    """The grace period ends by its clock, not only by a rotation with grace 0: once
    `previous_secret_expires_at` has passed, a delivery carries the new secret's signature only."""
    provider, org = await world.tenant("Provider"), await world.tenant("Org")
    with receivers(None) as (receiver,):
        app = await world.app(provider)
        old = app.secret
        await world.webhook(provider, app, receiver.url, sub("/api/v5/orgs/{organization_id}/chats"))
        await world.install(org, app)

        async def rotate_then_expire(session: AsyncSession) -> str:
            current = await session.get(App, app.id)
            assert current is not None
            rotated = await _rotate(session, provider, current, 3600)
            assert rotated.previous_secret is not None
            rotated.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
            return rotated.secret

        new = await world.run(rotate_then_expire)
        with worker():
            await world.publish(chat_event(org.org_id, resource_id="after-grace"))
            await world.settle()
    (delivered,) = [r for r in receiver.requests if b"after-grace" in r.body]
    assert len(delivered.headers["webhook-signature"].split(" ")) == 1
    assert StandardWebhook(new).verify(delivered.body, delivered.headers)["resource_id"] == "after-grace"
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(old).verify(delivered.body, delivered.headers)
