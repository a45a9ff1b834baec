"""events: NOTIFY the workers when events are committed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 03:20:00+00:00

A statement-level trigger on `events` sends `NOTIFY apps_api_events`. PostgreSQL delivers a
notification only when its transaction commits (never for a rollback) and folds identical
notifications of one transaction into one, so every committed change wakes the dispatcher
exactly when its events become visible, whichever code path wrote them (API, install flow,
ingestion, CLI), at no extra round trip for the writer.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION apps_api_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('apps_api_events', '');
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER events_notify AFTER INSERT ON events
        FOR EACH STATEMENT EXECUTE FUNCTION apps_api_notify_events()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER events_notify ON events")
    op.execute("DROP FUNCTION apps_api_notify_events()")
