"""A populated organization X for the fuzzing and isolation tests: one resource of every kind.

`populate()` works in any session: the test's rolled-back one (isolation matrix) or a committed
one (schemathesis against a real server, which then deletes `World.organization_ids`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.delivery.outbox import build_delivery
from apps_api.identity.service import issue_app_user_code
from apps_api.installations.service import install_app
from apps_api.models import App, AppShare, Event, Organization, OutboundDelivery
from apps_api.platform import service as platform
from apps_api.webhooks import schemas as webhook_schemas
from apps_api.webhooks import service as webhooks
from tests.factories import Tenant, make_app, make_tenant

SECRET_APP_NAME = "Xylophone private app 7f3a"
WEBHOOK_URL = "https://hooks.x-private.example.com/receive"


@dataclass
class World:
    owner: Tenant
    partner: Tenant
    app: App  # private app of X, installed in X with an app user, shared with the partner
    installation_id: uuid.UUID
    app_user_id: uuid.UUID
    share_id: uuid.UUID
    webhook_id: uuid.UUID
    entry_id: uuid.UUID
    app_user_code: str
    app_user_token_id: uuid.UUID  # a token of the app user, minted as its provider would
    public_app_id: uuid.UUID  # an approved public app of another organization
    partner_app_id: uuid.UUID  # an app the partner offers to X
    installable_app_id: uuid.UUID  # an app of X that is not installed anywhere
    # Disposable resources for DELETE operations, so that fuzzing them keeps the others.
    disposable_app_id: uuid.UUID
    disposable_installation_id: uuid.UUID
    disposable_installed_app_id: uuid.UUID
    disposable_share_id: uuid.UUID
    disposable_webhook_id: uuid.UUID
    organization_ids: list[uuid.UUID] = field(default_factory=list)

    def secrets(self) -> dict[str, str]:
        """X's data that must never reach another caller: name -> value."""
        return {
            "app id": str(self.app.id),
            "app name": self.app.name,
            "app secret": self.app.secret,
            "organization name": self.owner.organization.name,
            "installation id": str(self.installation_id),
            "app user id": str(self.app_user_id),
            "share id": str(self.share_id),
            "webhook id": str(self.webhook_id),
            "webhook url": WEBHOOK_URL,
            "log entry id": str(self.entry_id),
            "user email": self.owner.user.email or "",
            "app user code": self.app_user_code,
        }


def _subscription(pattern: str) -> dict[str, object]:
    return {
        "channel_pattern": pattern,
        "is_additions_subscribed": True,
        "is_changes_subscribed": True,
        "is_removals_subscribed": True,
    }


async def _webhook(session: AsyncSession, app: App, owner: Tenant, url: str) -> uuid.UUID:
    data = webhook_schemas.WebhookCreate.model_validate(
        {
            "endpoint_url": url,
            "channel_subscriptions": [_subscription("/api/v5/orgs/{organization_id}/chats")],
        }
    )
    created = await webhooks.create_webhook(session=session, app=app, actor=owner.user, data=data)
    return created.id


async def populate(session: AsyncSession, owner: Tenant, *, tag: str = "") -> World:
    """Give `owner` one resource of every kind the API serves (see `World`)."""
    partner = await make_tenant(session, name=f"Partner {tag}", features=["apps", "app_provider"])
    second_partner = await make_tenant(session, name=f"Partner 2 {tag}", features=["apps"])
    publisher = await make_tenant(session, name=f"Publisher {tag}", features=["apps", "app_provider"])
    for other in (partner, second_partner):
        await platform.add_partnership(session=session, a=owner.org_id, b=other.org_id)
    app = await make_app(
        session,
        owner.organization,
        name=SECRET_APP_NAME,
        is_app_user_required=True,
        app_user_default_first_name="Xeno",
        app_user_default_last_name="Bot",
        trigger_url="https://x-private.example.com/trigger",
        trigger_conditions=["install", "uninstall"],
        required_scopes=["users"],
    )
    installation = await install_app(
        granter=None, session=session, organization=owner.organization, app=app, actor=owner.user
    )
    assert installation.app_user_id is not None
    code = await issue_app_user_code(session=session, installation=installation)
    app_user_token, _ = await platform.create_token(
        session=session, user_id=installation.app_user_id, app_installation_id=installation.id
    )
    share = AppShare(app_id=app.id, organization_id=partner.org_id)
    disposable_share = AppShare(app_id=app.id, organization_id=second_partner.org_id)
    session.add_all([share, disposable_share])
    webhook_id = await _webhook(session, app, owner, WEBHOOK_URL)
    disposable_webhook_id = await _webhook(session, app, owner, "https://hooks.example.com/disposable")
    delivery, entry = build_delivery(
        kind="webhook",
        app_id=app.id,
        organization_id=owner.org_id,
        webhook_id=webhook_id,
        installation_id=installation.id,
        target_organization_id=owner.org_id,
        endpoint_url=WEBHOOK_URL,
        channel=f"/api/v5/orgs/{owner.org_id}/chats",
        action="added",
        resource_id="chat-1",
        payload={"channel": f"/api/v5/orgs/{owner.org_id}/chats", "action": "added", "resource_id": "chat-1"},
    )
    # Finished: no sweeper of another test's worker picks it up.
    delivery.status = "failed"
    entry.status = "failed"
    entry.reason = "Non-2xx response: 500."
    session.add(delivery)
    await session.flush()
    session.add(entry)
    public_app = await make_app(
        session, publisher.organization, name="Public helper", is_available_to_anyone=True, is_approved=True
    )
    partner_app = await make_app(
        session, partner.organization, name="Partner tool", is_available_to_partners=True
    )
    installable = await make_app(session, owner.organization, name="Installable")
    disposable = await make_app(session, owner.organization, name="Disposable")
    disposable_installed = await make_app(session, owner.organization, name="Disposable installed")
    another = await make_app(session, owner.organization, name="Disposable installation")
    disposable_installation = await install_app(
        granter=None, session=session, organization=owner.organization, app=another, actor=owner.user
    )
    await install_app(
        granter=None,
        session=session,
        organization=owner.organization,
        app=disposable_installed,
        actor=owner.user,
    )
    await session.flush()
    return World(
        owner=owner,
        partner=partner,
        app=app,
        installation_id=installation.id,
        app_user_id=installation.app_user_id,
        share_id=share.id,
        webhook_id=webhook_id,
        entry_id=entry.id,
        app_user_code=code,
        app_user_token_id=app_user_token.id,
        public_app_id=public_app.id,
        partner_app_id=partner_app.id,
        installable_app_id=installable.id,
        disposable_app_id=disposable.id,
        disposable_installation_id=disposable_installation.id,
        disposable_installed_app_id=disposable_installed.id,
        disposable_share_id=disposable_share.id,
        disposable_webhook_id=disposable_webhook_id,
        organization_ids=[owner.org_id, partner.org_id, second_partner.org_id, publisher.org_id],
    )


async def delete_organizations(engine: AsyncEngine, organization_ids: list[uuid.UUID]) -> None:
    """Delete committed organizations with their apps' deliveries and events."""
    async with AsyncSession(engine) as session, session.begin():
        app_ids = list(
            (
                await session.scalars(
                    select(App.id).where(App.owned_by_organization_id.in_(organization_ids))
                )
            ).all()
        )
        if app_ids:
            await session.execute(delete(OutboundDelivery).where(OutboundDelivery.app_id.in_(app_ids)))
        await session.execute(delete(Event).where(Event.organization_id.in_(organization_ids)))
        await session.execute(delete(Organization).where(Organization.id.in_(organization_ids)))
