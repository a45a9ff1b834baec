"""users.session_epoch: logging out, a password change and deletion end every browser session

Revision ID: 0004_sec
Revises: 0003
Create Date: 2026-11-30 11:00:00+00:00

The install flow's session cookie is stateless (signed); it now carries the user's session
epoch at login, and a session is valid only while the user's epoch is unchanged. Logging out,
changing the password and deleting the user increment it, which ends every session issued before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sec"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("users", "session_epoch")
