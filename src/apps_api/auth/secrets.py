"""Which app secrets are valid now: the current one and, during a rotation's grace period, the previous."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.crypto import PREFIX, EncryptionKeyMissing, keyring
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


# Stored secrets: (table, columns). Trigger deliveries keep a copy of the app's secret.
_SECRET_COLUMNS = (("apps", ("secret", "previous_secret")), ("outbound_deliveries", ("signing_secret",)))
_REENCRYPT_BATCH = 500


async def reencrypt_secrets(*, session: AsyncSession) -> dict[str, int]:
    """Move every stored secret (plaintext, or under an older key) to the first encryption key.

    In the caller's transaction, batch by batch; the rows are locked (`FOR UPDATE`) before they
    are rewritten, so a concurrent rotation is never overwritten with the old secret. Returns
    the rows rewritten per table.
    """
    keys = keyring()
    if keys.primary_id is None:
        raise EncryptionKeyMissing("APPS_API_ENCRYPTION_KEYS is not set")
    current = f"{PREFIX}{keys.primary_id}:%"
    counts: dict[str, int] = {}
    for table, columns in _SECRET_COLUMNS:
        stale = " OR ".join(f"({c} IS NOT NULL AND {c} NOT LIKE :current)" for c in columns)
        counts[table] = 0
        while True:
            rows = (
                await session.execute(
                    text(
                        f"SELECT id, {', '.join(columns)} FROM {table} WHERE {stale} "  # noqa: S608 - fixed names
                        f"LIMIT {_REENCRYPT_BATCH} FOR UPDATE"
                    ),
                    {"current": current},
                )
            ).all()
            for row in rows:
                values = {
                    column: None if value is None else keys.encrypt(keys.decrypt(value))
                    for column, value in zip(columns, row[1:], strict=True)
                }
                assignments = ", ".join(f"{column} = :{column}" for column in columns)
                await session.execute(
                    text(f"UPDATE {table} SET {assignments} WHERE id = :id"),  # noqa: S608 - fixed names
                    {**values, "id": row[0]},
                )
            counts[table] += len(rows)
            if len(rows) < _REENCRYPT_BATCH:
                break
    return counts
