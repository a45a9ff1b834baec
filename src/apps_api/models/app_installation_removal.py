from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base


class AppInstallationRemoval(Base):
    """What matching needs of a removed installation, written by a trigger on its deletion.

    Events written before the removal committed still reach it (a `removed` reaches the
    installation it removes); the purge job drops rows no undispatched event can need.
    """

    __tablename__ = "app_installation_removals"
    __table_args__ = (
        Index(
            "ix_app_installation_removals_organization_id_removed_xact_id",
            "organization_id",
            "removed_xact_id",
        ),
        Index("ix_app_installation_removals_removed_at", "removed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    app_id: Mapped[uuid.UUID]
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    app_owner_id: Mapped[uuid.UUID]
    app_user_id: Mapped[uuid.UUID | None]
    allowed_scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    installed_xact_id: Mapped[int | None] = mapped_column(BigInteger)
    removed_xact_id: Mapped[int] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    removed_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
