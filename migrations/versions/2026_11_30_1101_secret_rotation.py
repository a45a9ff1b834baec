"""apps.previous_secret: app secrets can be rotated with a grace period

Revision ID: 0005_sec
Revises: 0004_sec
Create Date: 2026-11-30 11:01:00+00:00

`POST .../owned_apps/{app_id}/rotate_secret` moves the secret to `previous_secret`, which keeps
authenticating (and signing webhooks beside the new one) until `previous_secret_expires_at`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_sec"
down_revision: str | None = "0004_sec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("apps", sa.Column("previous_secret", sa.String(64), nullable=True))
    op.add_column("apps", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("apps", "previous_secret_expires_at")
    op.drop_column("apps", "previous_secret")
