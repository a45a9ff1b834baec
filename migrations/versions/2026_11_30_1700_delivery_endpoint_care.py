"""webhooks: disabling and health; the log's per-webhook index

Revision ID: 1700_delivery
Revises: 0004_scale
Create Date: 2026-11-30 17:00:00+00:00

A webhook records whether it is disabled (automatically after failing for days, or by its
owner), and its health: the last successful and failed attempts and the current failure
streak (since when, how many), maintained by the worker when it records outcomes. The log
gains (webhook_id, created_at) covering status and duration: the 24 h delivery stats of one
webhook are an index-only range scan of at most two daily partitions.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1700_delivery"
down_revision: str | None = "0004_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhooks", sa.Column("is_disabled", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("webhooks", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("webhooks", sa.Column("disabled_reason", sa.String(200), nullable=True))
    op.add_column("webhooks", sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("webhooks", sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("webhooks", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "webhooks", sa.Column("failures_in_streak", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_index(
        "ix_webhook_log_entries_webhook_created",
        "webhook_log_entries",
        ["webhook_id", "created_at"],
        postgresql_include=["status", "duration"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_log_entries_webhook_created", table_name="webhook_log_entries")
    for column in (
        "failures_in_streak",
        "failing_since",
        "last_failure_at",
        "last_success_at",
        "disabled_reason",
        "disabled_at",
        "is_disabled",
    ):
        op.drop_column("webhooks", column)
