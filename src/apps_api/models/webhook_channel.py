from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin, TimestampMixin


class WebhookChannel(IdMixin, TimestampMixin, Base):
    """A channel family another service publishes through ingestion, registered by the operator."""

    __tablename__ = "webhook_channels"

    pattern: Mapped[str] = mapped_column(String(500), unique=True)
    scope: Mapped[str] = mapped_column(String(20))
    actions: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    description: Mapped[str] = mapped_column(Text, default="")
    # The JSON Schema of `resource` (for `changed`, the same without required attributes).
    resource_schema: Mapped[dict[str, Any]] = mapped_column(JSONB)
    example_resource: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
