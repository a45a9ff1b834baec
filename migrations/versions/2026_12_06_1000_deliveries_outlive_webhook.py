"""outbound_deliveries: a deleted webhook's deliveries stay, ended "Webhook deleted"

Revision ID: 1000_follow
Revises: 1700_delivery
Create Date: 2026-12-06 10:00:00+00:00

Deleting a webhook used to delete its deliveries, and with them their log entries (ON DELETE
CASCADE twice), although the log must stay readable for its retention after the webhook is
gone (docs/design.md section 8). `webhook_id` becomes a plain id, as `app_id` already is: the
deliveries of a deleted webhook keep it (so do the log entries, whose `webhook_id` filter keeps
finding them), the waiting ones end `failed` ("Webhook deleted", webhooks/service.py and the
sweeper), and the lease never sends a webhook attempt without its webhook (delivery/engine.py).
The purge deletes them with the retention like any finished delivery.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1000_follow"
down_revision: str | None = "1700_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "fk_outbound_deliveries_webhook_id_webhooks"


def upgrade() -> None:
    op.drop_constraint(_NAME, "outbound_deliveries", type_="foreignkey")


def downgrade() -> None:
    # Deliveries of deleted webhooks cannot point at them: the old rule dropped them with the webhook.
    op.execute(
        "DELETE FROM outbound_deliveries AS d WHERE d.kind = 'webhook' "
        "AND NOT EXISTS (SELECT 1 FROM webhooks AS w WHERE w.id = d.webhook_id)"
    )
    op.create_foreign_key(
        _NAME, "outbound_deliveries", "webhooks", ["webhook_id"], ["id"], ondelete="CASCADE"
    )
