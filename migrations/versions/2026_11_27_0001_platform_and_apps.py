"""platform and apps

Revision ID: 0001
Revises:
Create Date: 2026-11-27 23:35:13.871251+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=500), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("resource", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("required_scope", sa.String(length=32), nullable=True),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_undispatched",
        "events",
        ["id"],
        unique=False,
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "organizations",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subscription_active", sa.Boolean(), nullable=False),
        sa.Column("subscription_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("features", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "assets",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_assets_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
    )
    op.create_index("ix_assets_organization_id", "assets", ["organization_id"], unique=False)
    op.create_table(
        "partnerships",
        sa.Column("organization_a_id", sa.Uuid(), nullable=False),
        sa.Column("organization_b_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "organization_a_id < organization_b_id", name=op.f("ck_partnerships_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["organization_a_id"],
            ["organizations.id"],
            name=op.f("fk_partnerships_organization_a_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_b_id"],
            ["organizations.id"],
            name=op.f("fk_partnerships_organization_b_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_a_id", "organization_b_id", name=op.f("pk_partnerships")),
    )
    op.create_index("ix_partnerships_organization_b_id", "partnerships", ["organization_b_id"], unique=False)
    op.create_table(
        "users",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("first_name", sa.String(length=150), nullable=True),
        sa.Column("last_name", sa.String(length=150), nullable=True),
        sa.Column("alias", sa.String(length=150), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("avatar_url", sa.String(length=2000), nullable=True),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("permissions", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_users_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("ix_users_organization_id", "users", ["organization_id"], unique=False)
    op.create_index(
        "uq_users_email_live",
        "users",
        [sa.literal_column("lower(email)")],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL AND deleted_at IS NULL"),
    )
    op.create_table(
        "apps",
        sa.Column("owned_by_organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=75), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("icon_asset_id", sa.Uuid(), nullable=True),
        sa.Column("is_available_to_anyone", sa.Boolean(), nullable=False),
        sa.Column("is_approved", sa.Boolean(), nullable=False),
        sa.Column("is_available_to_partners", sa.Boolean(), nullable=False),
        sa.Column("is_app_user_required", sa.Boolean(), nullable=False),
        sa.Column("app_user_default_first_name", sa.String(length=150), nullable=True),
        sa.Column("app_user_default_last_name", sa.String(length=150), nullable=True),
        sa.Column("app_user_default_alias", sa.String(length=150), nullable=True),
        sa.Column("terms_of_service_url", sa.String(length=2000), nullable=False),
        sa.Column("privacy_policy_url", sa.String(length=2000), nullable=False),
        sa.Column("trigger_url", sa.String(length=2000), nullable=True),
        sa.Column("trigger_conditions", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("required_scopes", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("allowed_redirect_uris", postgresql.ARRAY(sa.String(length=2000)), nullable=False),
        sa.Column("installation_count", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("updated_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_apps_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["icon_asset_id"], ["assets.id"], name=op.f("fk_apps_icon_asset_id_assets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["owned_by_organization_id"],
            ["organizations.id"],
            name=op.f("fk_apps_owned_by_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_user_id"],
            ["users.id"],
            name=op.f("fk_apps_updated_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
    )
    op.create_index(
        "ix_apps_owner_created", "apps", ["owned_by_organization_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_apps_partner_created",
        "apps",
        ["owned_by_organization_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("is_available_to_partners"),
    )
    op.create_index(
        "ix_apps_public_created",
        "apps",
        ["created_at", "id"],
        unique=False,
        postgresql_where=sa.text("is_available_to_anyone AND is_approved"),
    )
    op.create_table(
        "app_installations",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("app_user_id", sa.Uuid(), nullable=True),
        sa.Column("allowed_scopes", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_installations_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["app_user_id"],
            ["users.id"],
            name=op.f("fk_app_installations_app_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_app_installations_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_app_installations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_installations")),
        sa.UniqueConstraint(
            "app_id", "organization_id", name=op.f("uq_app_installations_app_id_organization_id")
        ),
    )
    op.create_index(
        "ix_app_installations_app_created", "app_installations", ["app_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_app_installations_org_created",
        "app_installations",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "app_shares",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_shares_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_app_shares_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_app_shares_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_shares")),
        sa.UniqueConstraint("app_id", "organization_id", name=op.f("uq_app_shares_app_id_organization_id")),
    )
    op.create_index("ix_app_shares_organization_id", "app_shares", ["organization_id"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("app_installation_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_installation_id"],
            ["app_installations.id"],
            name=op.f("fk_api_tokens_app_installation_id_app_installations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_api_tokens_key_digest")),
    )
    op.create_index(
        op.f("ix_api_tokens_app_installation_id"), "api_tokens", ["app_installation_id"], unique=False
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "app_user_codes",
        sa.Column("code_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("app_installation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_user_codes_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["app_installation_id"],
            ["app_installations.id"],
            name=op.f("fk_app_user_codes_app_installation_id_app_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_app_user_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user_codes")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_app_user_codes_code_digest")),
    )
    op.create_index(
        op.f("ix_app_user_codes_app_installation_id"), "app_user_codes", ["app_installation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_app_user_codes_app_installation_id"), table_name="app_user_codes")
    op.drop_table("app_user_codes")
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_index(op.f("ix_api_tokens_app_installation_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index("ix_app_shares_organization_id", table_name="app_shares")
    op.drop_table("app_shares")
    op.drop_index("ix_app_installations_org_created", table_name="app_installations")
    op.drop_index("ix_app_installations_app_created", table_name="app_installations")
    op.drop_table("app_installations")
    op.drop_index(
        "ix_apps_public_created",
        table_name="apps",
        postgresql_where=sa.text("is_available_to_anyone AND is_approved"),
    )
    op.drop_index(
        "ix_apps_partner_created", table_name="apps", postgresql_where=sa.text("is_available_to_partners")
    )
    op.drop_index("ix_apps_owner_created", table_name="apps")
    op.drop_table("apps")
    op.drop_index(
        "uq_users_email_live",
        table_name="users",
        postgresql_where=sa.text("email IS NOT NULL AND deleted_at IS NULL"),
    )
    op.drop_index("ix_users_organization_id", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_partnerships_organization_b_id", table_name="partnerships")
    op.drop_table("partnerships")
    op.drop_index("ix_assets_organization_id", table_name="assets")
    op.drop_table("assets")
    op.drop_table("organizations")
    op.drop_index(
        "ix_events_undispatched", table_name="events", postgresql_where=sa.text("dispatched_at IS NULL")
    )
    op.drop_table("events")
