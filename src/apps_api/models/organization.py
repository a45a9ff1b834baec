from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin, TimestampMixin, utcnow

FEATURES = ("apps", "app_provider")


def subscription_is_active(active: bool, expires_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether a subscription with these columns is live (also read off a row, without the model)."""
    return active and (expires_at is None or expires_at > (now or utcnow()))


class Organization(IdMixin, TimestampMixin, Base):
    __tablename__ = "organizations"
    __table_args__ = (
        Index(
            "uq_organizations_external_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    subscription_active: Mapped[bool] = mapped_column(default=True)
    # None means the subscription does not expire.
    subscription_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    features: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    # The operator's own id of the organization (the operator API's PUT key), if it gave one.
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)

    def has_active_subscription(self, now: datetime | None = None) -> bool:
        return subscription_is_active(self.subscription_active, self.subscription_expires_at, now)

    def has_feature(self, feature: str) -> bool:
        return feature in self.features
