from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, query_expression

from apps_api.models.base import Base, IdMixin, utcnow

LOG_STATUSES = ("pending", "started", "successful", "failed")


class WebhookLogEntry(IdMixin, Base):
    """One HTTP attempt of an outbound delivery (webhook or trigger), with its outcome.

    Partitioned by day on `created_at` (migration 0004_scale, delivery/partitions.py), which never
    changes after the insert. PostgreSQL's primary key is (id, created_at), as it requires the
    partition key in it; ids are UUIDs, unique on their own, and the mapper identifies rows by id.
    """

    __tablename__ = "webhook_log_entries"
    __table_args__ = (
        Index("ix_webhook_log_entries_app_created", "app_id", "created_at", "id"),
        Index("ix_webhook_log_entries_delivery_id", "delivery_id"),
        # One webhook's recent attempts, index-only (its delivery stats).
        Index(
            "ix_webhook_log_entries_webhook_created",
            "webhook_id",
            "created_at",
            postgresql_include=["status", "duration"],
        ),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbound_deliveries.id", ondelete="CASCADE"))
    app_id: Mapped[uuid.UUID]
    organization_id: Mapped[uuid.UUID]  # the app's owner organization
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    action: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    retry_index: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    response_status_code: Mapped[int | None] = mapped_column(default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    duration: Mapped[int | None] = mapped_column(default=None)
    # What the attempt sent, as GitHub's "Recent Deliveries" shows it: the headers, and the body's
    # exact bytes with the app user's access token redacted (delivery/send.py).
    request_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    request_body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # When the attempt is due (pending) and when it started (started and later).
    scheduled_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    # A pending attempt's due time, from its delivery (webhooks/repository.py, loaded on demand).
    next_attempt_at: Mapped[datetime | None] = query_expression()
