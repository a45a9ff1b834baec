from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, utcnow


class Partnership(Base):
    """A symmetric partnership, stored once with the smaller id first."""

    __tablename__ = "partnerships"
    __table_args__ = (
        CheckConstraint("organization_a_id < organization_b_id", name="ordered_pair"),
        Index("ix_partnerships_organization_b_id", "organization_b_id"),
    )

    organization_a_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    organization_b_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @staticmethod
    def ordered(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
        return (a, b) if a < b else (b, a)
