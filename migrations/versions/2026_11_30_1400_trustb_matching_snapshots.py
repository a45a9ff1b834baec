"""events match the installations as they were: snapshots on events, installation xids, removals kept

Revision ID: 1400_trustb
Revises: 1300_trusta
Create Date: 2026-11-30 14:00:00+00:00

Matching runs after commit, in the dispatcher, but must see the installations as the event's
writer saw them (docs/design.md section 8): a `removed` reaches the installation just removed, and an
event never reaches an installation that committed after it. So:
- every event records the writing transaction's id and the statement's snapshot;
- every installation records the id of the transaction that created it;
- a trigger keeps a removed installation's matching attributes in `app_installation_removals`,
  whichever path deleted it (an organization's own deletion cascades and keeps nothing: its
  events go with it).
The dispatcher decides visibility from these exactly as PostgreSQL would have for the writer.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1400_trustb"
down_revision: str | None = "1300_trusta"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

XACT_ID = sa.text("pg_current_xact_id()::text::bigint")


def upgrade() -> None:
    op.add_column("events", sa.Column("xact_id", sa.BigInteger(), server_default=XACT_ID, nullable=True))
    op.add_column(
        "events",
        sa.Column(
            "snapshot", sa.Text(), server_default=sa.text("pg_current_snapshot()::text"), nullable=True
        ),
    )
    op.add_column(
        "app_installations",
        sa.Column("installed_xact_id", sa.BigInteger(), server_default=XACT_ID, nullable=True),
    )
    op.create_table(
        "app_installation_removals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("app_owner_id", sa.Uuid(), nullable=False),
        sa.Column("app_user_id", sa.Uuid(), nullable=True),
        sa.Column("allowed_scopes", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("installed_xact_id", sa.BigInteger(), nullable=True),
        sa.Column("removed_xact_id", sa.BigInteger(), server_default=XACT_ID, nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_app_installation_removals_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_installation_removals")),
    )
    op.create_index(
        op.f("ix_app_installation_removals_organization_id_removed_xact_id"),
        "app_installation_removals",
        ["organization_id", "removed_xact_id"],
    )
    op.create_index(
        op.f("ix_app_installation_removals_removed_at"), "app_installation_removals", ["removed_at"]
    )
    # Skips a removal whose organization or app is itself being deleted (a cascade): nothing of
    # theirs is delivered any more.
    op.execute(
        """
        CREATE FUNCTION apps_api_keep_removed_installation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO app_installation_removals (id, app_id, organization_id, app_owner_id, app_user_id,
                allowed_scopes, installed_xact_id)
            SELECT OLD.id, OLD.app_id, OLD.organization_id, apps.owned_by_organization_id, OLD.app_user_id,
                OLD.allowed_scopes, OLD.installed_xact_id
            FROM apps
            WHERE apps.id = OLD.app_id
              AND EXISTS (SELECT 1 FROM organizations WHERE organizations.id = OLD.organization_id)
            ON CONFLICT (id) DO NOTHING;
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER app_installations_keep_removed AFTER DELETE ON app_installations
        FOR EACH ROW EXECUTE FUNCTION apps_api_keep_removed_installation()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER app_installations_keep_removed ON app_installations")
    op.execute("DROP FUNCTION apps_api_keep_removed_installation()")
    op.drop_index(op.f("ix_app_installation_removals_removed_at"), table_name="app_installation_removals")
    op.drop_index(
        op.f("ix_app_installation_removals_organization_id_removed_xact_id"),
        table_name="app_installation_removals",
    )
    op.drop_table("app_installation_removals")
    op.drop_column("app_installations", "installed_xact_id")
    op.drop_column("events", "snapshot")
    op.drop_column("events", "xact_id")
