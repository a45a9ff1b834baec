"""outbound deliveries: an endpoint's due attempts per app

Revision ID: 1100_fair
Revises: 1000_follow
Create Date: 2026-12-06 11:00:00+00:00

The lease bounds the attempts in flight per (app, endpoint) below the bound per endpoint and
lets apps take turns (issue 24): it walks the apps with pending attempts at the endpoint, one
index probe each, and takes each app's next due attempts in order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1100_fair"
down_revision: str | None = "1000_follow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbound_deliveries_host_app_due",
        "outbound_deliveries",
        ["endpoint_host", "app_id", "next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_deliveries_host_app_due", table_name="outbound_deliveries")
