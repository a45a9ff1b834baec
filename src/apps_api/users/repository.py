"""The queries of an organization's users."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from apps_api.models import User


def organization_users(*, organization_id: uuid.UUID) -> Select[Any]:
    """The organization's live users (deleted ones are gone for every reader)."""
    return select(User).where(User.organization_id == organization_id, User.deleted_at.is_(None))
