"""webhooks: subscriptions, outbound deliveries (webhooks and triggers), log entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:43:37.085482+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_url", sa.String(length=2000), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("updated_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_webhooks_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_webhooks_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_webhooks_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_user_id"],
            ["users.id"],
            name=op.f("fk_webhooks_updated_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_app_created", "webhooks", ["app_id", "created_at", "id"], unique=False)
    op.create_table(
        "outbound_deliveries",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("installation_id", sa.Uuid(), nullable=True),
        sa.Column("target_organization_id", sa.Uuid(), nullable=True),
        sa.Column("app_user_id", sa.Uuid(), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("endpoint_url", sa.String(length=2000), nullable=False),
        sa.Column("endpoint_host", sa.String(length=300), nullable=False),
        sa.Column("channel", sa.String(length=500), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("signing_secret", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("current_log_entry_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("kind IN ('webhook', 'trigger')", name=op.f("ck_outbound_deliveries_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'started', 'successful', 'failed')",
            name=op.f("ck_outbound_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_outbound_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_deliveries")),
        sa.UniqueConstraint(
            "event_id", "webhook_id", name=op.f("uq_outbound_deliveries_event_id_webhook_id")
        ),
    )
    op.create_index(
        "ix_outbound_deliveries_completed_at", "outbound_deliveries", ["completed_at"], unique=False
    )
    op.create_index(
        "ix_outbound_deliveries_due",
        "outbound_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_outbound_deliveries_host_due",
        "outbound_deliveries",
        ["endpoint_host", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_outbound_deliveries_host_started",
        "outbound_deliveries",
        ["endpoint_host"],
        unique=False,
        postgresql_where=sa.text("status = 'started'"),
    )
    op.create_index(
        "ix_outbound_deliveries_leased",
        "outbound_deliveries",
        ["locked_until"],
        unique=False,
        postgresql_where=sa.text("status = 'started'"),
    )
    op.create_index("ix_outbound_deliveries_webhook_id", "outbound_deliveries", ["webhook_id"], unique=False)
    op.create_table(
        "webhook_channel_subscriptions",
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("channel_pattern", sa.String(length=500), nullable=False),
        sa.Column("is_additions_subscribed", sa.Boolean(), nullable=False),
        sa.Column("is_changes_subscribed", sa.Boolean(), nullable=False),
        sa.Column("is_removals_subscribed", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_webhook_channel_subscriptions_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_channel_subscriptions_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_channel_subscriptions")),
    )
    op.create_index(
        "ix_webhook_channel_subscriptions_app_id", "webhook_channel_subscriptions", ["app_id"], unique=False
    )
    op.create_index(
        "ix_webhook_channel_subscriptions_webhook_id",
        "webhook_channel_subscriptions",
        ["webhook_id", "position"],
        unique=False,
    )
    op.create_table(
        "webhook_log_entries",
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=True),
        sa.Column("endpoint_url", sa.String(length=2000), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("retry_index", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("response_status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["outbound_deliveries.id"],
            name=op.f("fk_webhook_log_entries_delivery_id_outbound_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_log_entries")),
    )
    op.create_index(
        "ix_webhook_log_entries_app_created",
        "webhook_log_entries",
        ["app_id", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_webhook_log_entries_created_at", "webhook_log_entries", ["created_at"], unique=False)
    op.create_index(
        "ix_webhook_log_entries_delivery_id", "webhook_log_entries", ["delivery_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_log_entries_delivery_id", table_name="webhook_log_entries")
    op.drop_index("ix_webhook_log_entries_created_at", table_name="webhook_log_entries")
    op.drop_index("ix_webhook_log_entries_app_created", table_name="webhook_log_entries")
    op.drop_table("webhook_log_entries")
    op.drop_index("ix_webhook_channel_subscriptions_webhook_id", table_name="webhook_channel_subscriptions")
    op.drop_index("ix_webhook_channel_subscriptions_app_id", table_name="webhook_channel_subscriptions")
    op.drop_table("webhook_channel_subscriptions")
    op.drop_index("ix_outbound_deliveries_webhook_id", table_name="outbound_deliveries")
    op.drop_index(
        "ix_outbound_deliveries_leased",
        table_name="outbound_deliveries",
        postgresql_where=sa.text("status = 'started'"),
    )
    op.drop_index(
        "ix_outbound_deliveries_host_due",
        table_name="outbound_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_outbound_deliveries_host_started",
        table_name="outbound_deliveries",
        postgresql_where=sa.text("status = 'started'"),
    )
    op.drop_index(
        "ix_outbound_deliveries_due",
        table_name="outbound_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_outbound_deliveries_completed_at", table_name="outbound_deliveries")
    op.drop_table("outbound_deliveries")
    op.drop_index("ix_webhooks_app_created", table_name="webhooks")
    op.drop_table("webhooks")
