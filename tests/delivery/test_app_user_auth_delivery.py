"""`app_user_auth` on real deliveries (issue 12, points 3 and 11): the real arq worker process
delivers to real HTTP receivers on 127.0.0.1, and the app then calls the API with it.

- It is the app user of the installation the delivery is about, also on the owner's
  `/owned_apps/{app_id}/installations` channel when the owner has installed its own app too;
  absent when that installation has no app user (or no longer exists).
- It is an object as giosg sends it, and `<token_type> <access_token>` (and `GIOSGAPP
  <access_token> <app_secret>`) authenticates as that app user, within its installation's
  scopes, never on a provider route.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from apps_api.auth.access_tokens import decode_access_token
from apps_api.delivery.matching import INSTALLATIONS_PATTERN
from apps_api.installations.service import uninstall
from apps_api.models import AppInstallation
from apps_api.settings import Settings
from tests.fixtures import delivery
from tests.fixtures.webhooks import eventually, receivers, worker

pytestmark = pytest.mark.subprocess

ORGS = "/api/v5/orgs"


async def test_app_user_auth_is_the_installations_own_app_user_and_works_as_sent(
    world: delivery.World, settings: Settings, client: httpx.AsyncClient
) -> None:
    owner = await world.tenant("Owner A")
    b = await world.tenant("Installer B")
    bot_app = await world.app(
        owner,
        name="Bot",
        is_app_user_required=True,
        app_user_default_first_name="Bot",
        app_user_default_last_name="A",
    )
    plain_app = await world.app(owner, name="Plain")
    channel = f"/api/v5/orgs/{owner.org_id}/owned_apps/{bot_app.id}/installations"
    with receivers(None, None) as (r_bot, r_plain), worker():
        await world.webhook(owner, bot_app, r_bot.url, delivery.sub(INSTALLATIONS_PATTERN))
        await world.webhook(owner, plain_app, r_plain.url, delivery.sub(INSTALLATIONS_PATTERN))
        # The owner installs its own app first: its app user must not stand in for B's.
        own = await world.install(owner, bot_app, scopes=["settings"])
        await world.install(owner, plain_app, scopes=[])
        b_inst = await world.install(b, bot_app, scopes=["settings"])
        await world.install(b, plain_app, scopes=[])
        await world.settle()
        added = [body for body in delivery.verified(r_bot, bot_app.secret) if body["action"] == "added"]
        assert sorted(body["resource_id"] for body in added) == sorted([str(own.id), str(b_inst.id)])
        for body in added:
            assert body["channel"] == channel
            auth = body["app_user_auth"]
            assert set(auth) == {"access_token", "token_type", "expires_in", "user_id", "organization_id"}
            assert auth["token_type"] == "Bearer" and isinstance(auth["expires_in"], int)
            assert auth["user_id"] == body["resource"]["app_user_id"]
            assert auth["organization_id"] == body["resource"]["organization_id"]
        b_added = next(body for body in added if body["resource_id"] == str(b_inst.id))
        b_auth = b_added["app_user_auth"]
        assert b_auth["user_id"] == str(b_inst.app_user_id) != str(own.app_user_id)
        assert b_auth["organization_id"] == str(b.org_id)
        claims = decode_access_token(b_auth["access_token"], secret_key=settings.secret_key)
        assert claims is not None and claims["sub"] == str(b_inst.app_user_id)
        assert claims["inst_id"] == str(b_inst.id)
        # An installation without an app user: no app_user_auth at all.
        plain = delivery.verified(r_plain, plain_app.secret)
        assert len(plain) == 2 and all("app_user_auth" not in body for body in plain)

        # The app uses it the way giosg's integrations do: `<token_type> <access_token>`.
        as_sent = {"Authorization": f"{b_auth['token_type']} {b_auth['access_token']}"}
        listed = await client.get(f"{ORGS}/{b.org_id}/app_installations", headers=as_sent)
        assert listed.status_code == 200, listed.text
        assert {item["id"] for item in listed.json()["results"]} >= {str(b_inst.id)}
        with_secret = {"Authorization": f"GIOSGAPP {b_auth['access_token']} {bot_app.secret}"}
        assert (
            await client.get(f"{ORGS}/{b.org_id}/app_installations", headers=with_secret)
        ).status_code == 200
        # Bound to B, and never a provider: not B's owned apps, nor anything of A.
        for path in (
            f"{ORGS}/{b.org_id}/owned_apps",
            f"{ORGS}/{owner.org_id}/owned_apps",
            f"{ORGS}/{owner.org_id}/app_installations",
            f"{channel}",
        ):
            refused = await client.get(path, headers=as_sent)
            assert refused.status_code == 403, (path, refused.text)

        # B uninstalls: the `removed` carries no app_user_auth (that app user is gone), and the
        # delivered access token stops working.
        async def _uninstall(session: Any) -> None:
            current = await session.get(AppInstallation, b_inst.id)
            await uninstall(session=session, installation=current, actor_user_id=b.user.id)

        await world.run(_uninstall)
        await eventually(lambda: _removed(r_bot, bot_app.secret, b_inst.id) is not None, what="removed")
        removed = _removed(r_bot, bot_app.secret, b_inst.id)
        assert removed is not None and "app_user_auth" not in removed
        gone = await client.get(f"{ORGS}/{b.org_id}/app_installations", headers=as_sent)
        assert gone.status_code == 401


def _removed(receiver: Any, secret: str, installation_id: uuid.UUID) -> dict[str, Any] | None:
    for body in delivery.verified(receiver, secret):
        if body["action"] == "removed" and body["resource_id"] == str(installation_id):
            return body
    return None
