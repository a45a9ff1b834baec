from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apps_api.models.base import Base, IdMixin, utcnow
from apps_api.models.organization import Organization


class AppShare(IdMixin, Base):
    """An owner's grant that lets one partner organization see and install an app."""

    __tablename__ = "app_shares"
    __table_args__ = (
        UniqueConstraint("app_id", "organization_id"),
        Index("ix_app_shares_organization_id", "organization_id"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )

    organization: Mapped[Organization] = relationship(lazy="raise")
