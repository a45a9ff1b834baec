from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin, TimestampMixin

PERMISSIONS = ("reports", "settings", "users")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_organization_id", "organization_id"),
        # One live account per email; soft-deleted users free their address.
        Index(
            "uq_users_email_live",
            text("lower(email)"),
            unique=True,
            postgresql_where=text("email IS NOT NULL AND deleted_at IS NULL"),
        ),
        # The operator's id of a user is unique among its organization's live users.
        Index(
            "uq_users_organization_external_id_live",
            "organization_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL AND deleted_at IS NULL"),
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    first_name: Mapped[str | None] = mapped_column(String(150), default=None)
    last_name: Mapped[str | None] = mapped_column(String(150), default=None)
    alias: Mapped[str | None] = mapped_column(String(150), default=None)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    avatar_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    is_bot: Mapped[bool] = mapped_column(default=False)
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    # Browser sessions carry the epoch of their login; logout, a password change and deletion
    # increment it, which ends every session issued before (web/session.py).
    session_epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    # The operator's own id of the user (the operator API's PUT key), if it gave one.
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions
