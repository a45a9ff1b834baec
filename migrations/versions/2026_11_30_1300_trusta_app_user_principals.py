"""app_installations: one installation per app user, found by index

Revision ID: 1300_trusta
Revises: 0006_sec
Create Date: 2026-11-30 13:00:00+00:00

Every API token's principal is looked up together with the installation whose app user its
user is (that makes it an app principal, docs/permissions.md): the lookup runs on
every request, so it needs an index, and an app user belongs to exactly one installation.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1300_trusta"
down_revision: str | None = "0006_sec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("uq_app_installations_app_user_id", "app_installations", ["app_user_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_app_installations_app_user_id", table_name="app_installations")
