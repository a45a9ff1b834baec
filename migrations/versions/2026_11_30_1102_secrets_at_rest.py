"""App secrets encrypted at rest (AES-GCM under APPS_API_ENCRYPTION_KEYS)

Revision ID: 0006_sec
Revises: 0005_sec
Create Date: 2026-11-30 11:02:00+00:00

`apps.secret`, `apps.previous_secret` and `outbound_deliveries.signing_secret` become text
columns holding `enc:v1:<key id>:<ciphertext>` (kit/crypto.py), and every plaintext value
already stored is encrypted under the first configured key. With plaintext rows present and no
key configured the migration stops with a message rather than leave secrets readable.
Downgrading decrypts them again (the keys are needed for that too).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from apps_api.kit.crypto import PREFIX, keyring

revision: str = "0006_sec"
down_revision: str | None = "0005_sec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("apps", "secret"), ("apps", "previous_secret"), ("outbound_deliveries", "signing_secret"))


def _convert(*, encrypt: bool) -> None:
    bind = op.get_bind()
    keys = keyring()
    for table, column in _COLUMNS:
        condition = "NOT LIKE" if encrypt else "LIKE"
        rows = bind.execute(
            sa.text(
                f"SELECT id, {column} FROM {table} "  # noqa: S608 - fixed names
                f"WHERE {column} IS NOT NULL AND {column} {condition} :prefix"
            ),
            {"prefix": PREFIX + "%"},
        ).all()
        for row_id, value in rows:
            converted = keys.encrypt(value) if encrypt else keys.decrypt(value)
            bind.execute(
                sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),  # noqa: S608 - fixed names
                {"value": converted, "id": row_id},
            )


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(64))
    _convert(encrypt=True)


def downgrade() -> None:
    _convert(encrypt=False)
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.String(64), existing_type=sa.Text())
