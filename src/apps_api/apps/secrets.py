"""Which app secrets are valid now: the current one and, during a rotation's grace period, the previous."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from apps_api.kit.security import constant_time_equals
from apps_api.models.base import utcnow

# Compared against when there is no app or no previous secret, so every check does the same work.
_DUMMY_SECRET = "0" * 64


class HasSecrets(Protocol):
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


def live_previous_secret(app: HasSecrets, *, now: datetime | None = None) -> str | None:
    """The secret replaced by the last rotation while its grace period lasts, else None."""
    expires_at = app.previous_secret_expires_at
    if app.previous_secret is None or expires_at is None or expires_at <= (now or utcnow()):
        return None
    return app.previous_secret


def app_secret_matches(app: HasSecrets | None, presented: str) -> bool:
    """True when `presented` is the app's current secret or its unexpired previous one (constant time)."""
    current = app.secret if app is not None else _DUMMY_SECRET
    previous = live_previous_secret(app) if app is not None else None
    matches_current = constant_time_equals(current, presented)
    matches_previous = constant_time_equals(previous or _DUMMY_SECRET, presented) and previous is not None
    return app is not None and (matches_current or matches_previous)
