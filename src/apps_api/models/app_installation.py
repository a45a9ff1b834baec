from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apps_api.models.app import App
from apps_api.models.base import Base, IdMixin, TimestampMixin
from apps_api.models.organization import Organization
from apps_api.models.user import User


class AppInstallation(IdMixin, TimestampMixin, Base):
    __tablename__ = "app_installations"
    __table_args__ = (
        # One installation per (app, organization); the database settles concurrent installs.
        UniqueConstraint("app_id", "organization_id"),
        Index("ix_app_installations_org_created", "organization_id", "created_at", "id"),
        Index("ix_app_installations_app_created", "app_id", "created_at", "id"),
        # An app user belongs to one installation; every API token's principal looks it up.
        Index("uq_app_installations_app_user_id", "app_user_id", unique=True),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    app_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    allowed_scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # The creating transaction, set by the database: events written before it committed never
    # reach it (delivery/matching.py). A trigger keeps a deleted row in `app_installation_removals`.
    installed_xact_id: Mapped[int | None] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )

    app: Mapped[App] = relationship(lazy="raise")
    organization: Mapped[Organization] = relationship(lazy="raise")
    app_user: Mapped[User | None] = relationship(foreign_keys=[app_user_id], lazy="raise")
