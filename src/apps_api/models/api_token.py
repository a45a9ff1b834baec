from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from apps_api.models.base import Base, IdMixin, utcnow


class ApiToken(IdMixin, Base):
    """A bearer secret; only its SHA-256 digest is stored (the key has 256 bits of entropy)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # First characters of the key, so operators can tell tokens apart without the secret.
    key_prefix: Mapped[str] = mapped_column(String(12))
    # Set for app-user tokens minted by /identity/token, so uninstalling can revoke them.
    app_installation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("app_installations.id", ondelete="SET NULL"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
