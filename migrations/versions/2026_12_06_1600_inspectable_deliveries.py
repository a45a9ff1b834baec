"""webhook_log_entries: what each attempt sent; deliveries found by their webhook-id

Revision ID: 1600_inspect
Revises: 1300_external_ids
Create Date: 2026-12-06 16:00:00+00:00

A log entry records the request of its attempt as GitHub's "Recent Deliveries" shows it: the
headers sent and the body's exact bytes (the app user's access token redacted), written with the
attempt's outcome (delivery/engine.py). Nullable columns on the partitioned parent: PostgreSQL
adds them to every partition without rewriting a row. The log is searched by `webhook-id`
(`message_id`), so deliveries gain an index on it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1600_inspect"
down_revision: str | None = "1300_external_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_log_entries",
        sa.Column("request_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("webhook_log_entries", sa.Column("request_body", sa.Text(), nullable=True))
    op.create_index("ix_outbound_deliveries_message_id", "outbound_deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbound_deliveries_message_id", table_name="outbound_deliveries")
    op.drop_column("webhook_log_entries", "request_body")
    op.drop_column("webhook_log_entries", "request_headers")
