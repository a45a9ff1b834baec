"""Builders for test data, going through the same services the CLI uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.outbox import build_delivery
from apps_api.kit.security import new_app_secret
from apps_api.models import App, Organization, User, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.platform import service


@dataclass
class Tenant:
    organization: Organization
    user: User
    token: str

    @property
    def org_id(self) -> uuid.UUID:
        return self.organization.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


async def make_tenant(
    session: AsyncSession,
    *,
    name: str = "Org",
    features: list[str] | None = None,
    permissions: list[str] | None = None,
    subscription_days: int | None = None,
    email: str | None = None,
    password: str | None = None,
) -> Tenant:
    organization = await service.create_organization(
        session=session,
        name=name,
        features=features if features is not None else ["apps"],
        subscription_days=subscription_days,
    )
    user, token = await make_user(
        session, organization, permissions=permissions, email=email, password=password
    )
    return Tenant(organization=organization, user=user, token=token)


async def make_user(
    session: AsyncSession,
    organization: Organization,
    *,
    permissions: list[str] | None = None,
    email: str | None = None,
    password: str | None = None,
    token_expires_at: datetime | None = None,
) -> tuple[User, str]:
    user = await service.create_user(
        session=session,
        organization_id=organization.id,
        permissions=permissions if permissions is not None else ["settings", "users", "reports"],
        email=email,
        password=password,
        first_name="Test",
        last_name="User",
    )
    _, key = await service.create_token(session=session, user_id=user.id, expires_at=token_expires_at)
    return user, key


async def make_app(
    session: AsyncSession,
    owner: Organization,
    *,
    created_at: datetime | None = None,
    **attributes: Any,
) -> App:
    """Insert an app directly (for tests of read views that do not exercise app creation)."""
    values: dict[str, Any] = {
        "name": "Test app",
        "description": "An app for tests",
        "terms_of_service_url": "https://example.com/tos",
        "privacy_policy_url": "https://example.com/privacy",
        "secret": new_app_secret(),
    }
    values.update(attributes)
    app = App(owned_by_organization_id=owner.id, **values)
    if created_at is not None:
        app.created_at = created_at
        app.updated_at = created_at
    session.add(app)
    await session.flush()
    return app


def minutes_ago(minutes: float) -> datetime:
    return utcnow() - timedelta(minutes=minutes)


async def make_log_entry(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    organization_id: uuid.UUID,
    resource_id: str,
    status: str = "successful",
    completed_at: datetime | None = None,
    response_headers: dict[str, str] | None = None,
    response_body: str | None = None,
) -> WebhookLogEntry:
    """A trigger delivery and its log entry, as the delivery pipeline writes them."""
    delivery, entry = build_delivery(
        kind="trigger",
        app_id=app_id,
        organization_id=organization_id,
        webhook_id=None,
        method="POST",
        endpoint_url="https://hooks.example.com/x",
        channel=f"/api/v5/orgs/{organization_id}/users",
        action="added",
        resource_id=resource_id,
        payload={},
    )
    session.add(delivery)
    await session.flush()
    entry.status, entry.completed_at = status, completed_at
    entry.response_headers, entry.response_body = response_headers, response_body
    session.add(entry)
    await session.flush()
    return entry
