from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin, TimestampMixin, utcnow

FEATURES = ("apps", "app_provider")


class Organization(IdMixin, TimestampMixin, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    subscription_active: Mapped[bool] = mapped_column(default=True)
    # None means the subscription does not expire.
    subscription_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    features: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)

    def has_active_subscription(self, now: datetime | None = None) -> bool:
        if not self.subscription_active:
            return False
        expires = self.subscription_expires_at
        return expires is None or expires > (now or utcnow())

    def has_feature(self, feature: str) -> bool:
        return feature in self.features
