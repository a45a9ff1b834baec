from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apps_api.models.app import App
from apps_api.models.base import Base, IdMixin, TimestampMixin
from apps_api.models.organization import Organization
from apps_api.models.user import User
from apps_api.models.webhook_channel_subscription import WebhookChannelSubscription


class Webhook(IdMixin, TimestampMixin, Base):
    """An owned app's endpoint that receives signed notifications of its channel subscriptions."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_app_created", "app_id", "created_at", "id"),)

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    # The app's owner organization (the spec's `organization_id` of a webhook).
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    updated_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )

    app: Mapped[App] = relationship(lazy="raise")
    organization: Mapped[Organization] = relationship(lazy="raise")
    created_by_user: Mapped[User | None] = relationship(foreign_keys=[created_by_user_id], lazy="raise")
    updated_by_user: Mapped[User | None] = relationship(foreign_keys=[updated_by_user_id], lazy="raise")
    channel_subscriptions: Mapped[list[WebhookChannelSubscription]] = relationship(
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="WebhookChannelSubscription.position",
        passive_deletes=True,
    )
