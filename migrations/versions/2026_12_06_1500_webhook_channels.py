"""webhook_channels: channel families other services publish, registered by the operator

Revision ID: 1500_channels
Revises: 1100_fair
Create Date: 2026-12-06 15:00:00+00:00

Each row names a pattern, the scope an installation needs, the actions and the JSON Schema of
`resource`: ingestion validates matching events against it, and the channel catalogue lists it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1500_channels"
down_revision: str | None = "1100_fair"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pattern", sa.String(500), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("actions", postgresql.ARRAY(sa.String(20)), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("resource_schema", postgresql.JSONB(), nullable=False),
        sa.Column("example_resource", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_channels")),
        sa.UniqueConstraint("pattern", name=op.f("uq_webhook_channels_pattern")),
    )


def downgrade() -> None:
    op.drop_table("webhook_channels")
