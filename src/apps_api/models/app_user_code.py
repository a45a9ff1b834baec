from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin, utcnow


class AppUserCode(IdMixin, Base):
    """A single-use code an app exchanges at /identity/token for its app user's API token."""

    __tablename__ = "app_user_codes"

    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    app_installation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("app_installations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
