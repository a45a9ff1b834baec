from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

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
    # Disabled (automatically after failing for days, or by the owner): new events skip it.
    is_disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    # Health, maintained by the worker with each batch of outcomes (delivery/record.py, `_RECORD`):
    # the current failure streak is what automatic disabling reads.
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    failures_in_streak: Mapped[int] = mapped_column(default=0, server_default="0")
    # The last 24 h of the log, loaded on demand (webhooks/repository.py, `delivery_stats()`).
    delivery_stats: Mapped[dict[str, Any] | None] = query_expression()

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
