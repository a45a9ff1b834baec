from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, Text, text
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
    # The writing transaction and the statement's snapshot, set by the database: matching sees
    # the installations as the writer saw them (delivery/matching.py `Snapshot`).
    xact_id: Mapped[int | None] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    snapshot: Mapped[str | None] = mapped_column(Text, server_default=text("pg_current_snapshot()::text"))
    # Set once the event has been fanned out into deliveries.
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
