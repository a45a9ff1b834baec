from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from apps_api.kit.crypto import EncryptedText
from apps_api.models.asset import Asset
from apps_api.models.base import Base, IdMixin, TimestampMixin
from apps_api.models.organization import Organization
from apps_api.models.user import User

TRIGGER_CONDITIONS = (
    "chat_close",
    "chat_end",
    "chat_end_with_msgs",
    "chat_focus",
    "chat_open",
    "chat_start",
    "console_load",
    "install",
    "manual_dialog",
    "manual_nav",
    "setup",
    "uninstall",
)
SCOPES = ("reports", "settings", "users")


class App(IdMixin, TimestampMixin, Base):
    __tablename__ = "apps"
    __table_args__ = (
        Index("ix_apps_owner_created", "owned_by_organization_id", "created_at", "id"),
        Index(
            "ix_apps_public_created",
            "created_at",
            "id",
            postgresql_where=text("is_available_to_anyone AND is_approved"),
        ),
        Index(
            "ix_apps_partner_created",
            "owned_by_organization_id",
            "created_at",
            "id",
            postgresql_where=text("is_available_to_partners"),
        ),
    )

    owned_by_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(75))
    description: Mapped[str] = mapped_column(Text)
    icon_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL"), default=None
    )
    is_available_to_anyone: Mapped[bool] = mapped_column(default=False)
    # The spec's "approved by giosg": an operator approves with `apps-api admin approve-app`.
    is_approved: Mapped[bool] = mapped_column(default=False)
    is_available_to_partners: Mapped[bool] = mapped_column(default=False)
    is_app_user_required: Mapped[bool] = mapped_column(default=False)
    app_user_default_first_name: Mapped[str | None] = mapped_column(String(150), default=None)
    app_user_default_last_name: Mapped[str | None] = mapped_column(String(150), default=None)
    app_user_default_alias: Mapped[str | None] = mapped_column(String(150), default=None)
    terms_of_service_url: Mapped[str] = mapped_column(String(2000))
    privacy_policy_url: Mapped[str] = mapped_column(String(2000))
    trigger_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    trigger_conditions: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    required_scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    allowed_redirect_uris: Mapped[list[str]] = mapped_column(ARRAY(String(2000)), default=list)
    # Maintained in the same transaction as every install and uninstall.
    installation_count: Mapped[int] = mapped_column(default=0)
    # Encrypted at rest (kit/crypto.py); plaintext on the ORM object.
    secret: Mapped[str] = mapped_column(EncryptedText())
    # After a rotation, the replaced secret keeps working until `previous_secret_expires_at`
    # (GIOSGAPP, /identity/token, and a second webhook signature): auth/secrets.py.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText(), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    updated_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )

    owned_by_organization: Mapped[Organization] = relationship(lazy="raise", innerjoin=True)
    icon_asset: Mapped[Asset | None] = relationship(lazy="raise")
    created_by_user: Mapped[User | None] = relationship(foreign_keys=[created_by_user_id], lazy="raise")
    updated_by_user: Mapped[User | None] = relationship(foreign_keys=[updated_by_user_id], lazy="raise")
