from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.kit.crypto import EncryptedText
from apps_api.models.base import Base, IdMixin, utcnow

DELIVERY_KINDS = ("webhook", "trigger")
DELIVERY_STATUSES = ("pending", "started", "successful", "failed")


class OutboundDelivery(IdMixin, Base):
    """One message to one endpoint (a webhook notification or a trigger request), retried until done.

    PostgreSQL is the source of truth: `next_attempt_at` holds long waits, `locked_until` /
    `locked_by` are the lease that keeps two workers from sending the same attempt.
    A trigger row is self-contained (URL, claims, a copy of the signing secret), so it is
    still sent after its app was deleted.
    """

    __tablename__ = "outbound_deliveries"
    __table_args__ = (
        CheckConstraint("kind IN ('webhook', 'trigger')", name="kind"),
        CheckConstraint("status IN ('pending', 'started', 'successful', 'failed')", name="status"),
        # The dispatcher may run twice for one event: a webhook gets each event once.
        UniqueConstraint("event_id", "webhook_id"),
        Index("ix_outbound_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_outbound_deliveries_leased", "locked_until", postgresql_where=text("status = 'started'")),
        # A worker holding one of an endpoint's slots takes the endpoint's next due attempt.
        Index(
            "ix_outbound_deliveries_host_due",
            "endpoint_host",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # The lease walks an endpoint's apps (one probe each) and takes each app's next due
        # attempts (delivery/lease.py), whatever one app's backlog.
        Index(
            "ix_outbound_deliveries_host_app_due",
            "endpoint_host",
            "app_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_outbound_deliveries_host_started",
            "endpoint_host",
            postgresql_where=text("status = 'started'"),
        ),
        Index("ix_outbound_deliveries_webhook_id", "webhook_id"),
        Index("ix_outbound_deliveries_completed_at", "completed_at"),
        # The log is searched by `webhook-id`.
        Index("ix_outbound_deliveries_message_id", "message_id"),
    )

    kind: Mapped[str] = mapped_column(String(16))
    # Plain ids, no foreign keys: a trigger outlives its app and installation, a webhook's
    # delivery (and so its log entries) its webhook: a waiting one ends "Webhook deleted".
    app_id: Mapped[uuid.UUID]
    organization_id: Mapped[uuid.UUID]  # the app's owner organization
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(default=None)  # NULL for a trigger
    event_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    installation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # The organization the event happened in (the installing organization).
    target_organization_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    app_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    method: Mapped[str] = mapped_column(String(8), default="POST")
    # A webhook delivery's next attempt goes to its webhook's URL: these follow a change of it
    # (delivery/follow.py), and the lease never sends an attempt whose copy is out of date.
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    # scheme://host:port, the unit of the per-endpoint concurrency bound.
    endpoint_host: Mapped[str] = mapped_column(String(300))
    channel: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(200))
    # Webhook: the JSON body (without `app_user_auth`, minted per attempt).
    # Trigger: {"type": ..., "claims": {...}} for the `data` JWT, signed per attempt.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Encrypted at rest like the app's own (kit/crypto.py).
    signing_secret: Mapped[str | None] = mapped_column(EncryptedText(), default=None)
    # Standard Webhooks `webhook-id`: the same on every attempt of this delivery.
    message_id: Mapped[str] = mapped_column(String(64))

    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(default=0)
    # Attempts allowed before the delivery fails; redelivery grants one more.
    max_attempts: Mapped[int] = mapped_column(default=8)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    locked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    # The log entry of the attempt that is pending or in flight.
    current_log_entry_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
