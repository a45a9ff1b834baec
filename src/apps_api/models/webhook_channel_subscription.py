from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin


class WebhookChannelSubscription(IdMixin, Base):
    """One channel pattern of a webhook with its three action flags."""

    __tablename__ = "webhook_channel_subscriptions"
    __table_args__ = (
        Index("ix_webhook_channel_subscriptions_webhook_id", "webhook_id", "position"),
        # The worker's matching index loads the subscriptions of a few apps at a time.
        Index("ix_webhook_channel_subscriptions_app_id", "app_id"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    # Denormalized from the webhook so the matcher loads an app's patterns from one table.
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    channel_pattern: Mapped[str] = mapped_column(String(500))
    is_additions_subscribed: Mapped[bool]
    is_changes_subscribed: Mapped[bool]
    is_removals_subscribed: Mapped[bool]
