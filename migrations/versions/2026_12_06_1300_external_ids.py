"""organizations.external_id and users.external_id: the operator's own ids

Revision ID: 1300_external_ids
Revises: 1500_channels
Create Date: 2026-12-06 13:00:00+00:00

The operator API (`/internal/v1`) creates and updates organizations and users by the
operator's own ids, so a sync job can PUT the same state again and again. An organization's
external_id is unique; a user's is unique among the live users of its organization (a
soft-deleted user frees it, as it frees its email).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1300_external_ids"
down_revision: str | None = "1500_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("organizations", sa.Column("external_id", sa.String(200), nullable=True))
    op.create_index(
        "uq_organizations_external_id",
        "organizations",
        ["external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.add_column("users", sa.Column("external_id", sa.String(200), nullable=True))
    op.create_index(
        "uq_users_organization_external_id_live",
        "users",
        ["organization_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL AND deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_users_organization_external_id_live", table_name="users")
    op.drop_column("users", "external_id")
    op.drop_index("uq_organizations_external_id", table_name="organizations")
    op.drop_column("organizations", "external_id")
