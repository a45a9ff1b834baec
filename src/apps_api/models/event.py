from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, utcnow


class Event(Base):
    """Transactional outbox: a change in an organization, written in the change's own transaction."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_undispatched", "id", postgresql_where=text("dispatched_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    organization_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(200))
    resource: Mapped[dict[str, Any]] = mapped_column(JSONB)
    required_scope: Mapped[str | None] = mapped_column(String(32), default=None)
    # Who caused the change (the uninstall trigger's `user_id`); None for system actions.
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once the event has been fanned out into deliveries.
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
