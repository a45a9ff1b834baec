"""webhook_log_entries: daily range partitions on created_at

Revision ID: 0004_scale
Revises: 1400_trustb
Create Date: 2026-11-30 15:00:00+00:00

Retention then drops whole partitions instead of deleting millions of rows an hour (which
bloated the table), and the log's lists prune to the days they read (apps_api/delivery/partitions.py).

In place: the table is renamed, a partitioned table of the same columns takes its name, with a
DEFAULT partition and one partition per day from the oldest entry's day (at most 30 days back;
older rows go to DEFAULT, which retention empties) to 7 days ahead; the rows are copied, then
the indexes, primary key and foreign key are built, and the old table is dropped. The primary
key becomes (id, created_at): PostgreSQL requires the partition key in it (ids stay unique
UUIDs). All in the migration's transaction, which holds an ACCESS EXCLUSIVE lock on
webhook_log_entries throughout: the log's reads and writes (so the worker's deliveries) wait
until it commits. docs/operations.md ("Running at scale") gives the time it takes at 1M rows.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_scale"
down_revision: str | None = "1400_trustb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "webhook_log_entries_unpartitioned"


def upgrade() -> None:
    op.execute(f"ALTER TABLE webhook_log_entries RENAME TO {_OLD}")
    op.execute(f"ALTER TABLE {_OLD} RENAME CONSTRAINT pk_webhook_log_entries TO pk_{_OLD}")
    op.execute(
        f"ALTER TABLE {_OLD} RENAME CONSTRAINT fk_webhook_log_entries_delivery_id_outbound_deliveries "
        f"TO fk_{_OLD}_delivery_id"
    )
    for index in ("app_created", "created_at", "delivery_id"):
        op.execute(f"ALTER INDEX ix_webhook_log_entries_{index} RENAME TO ix_{_OLD}_{index}")
    op.execute(
        f"CREATE TABLE webhook_log_entries (LIKE {_OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)"
    )
    op.execute("CREATE TABLE webhook_log_entries_default PARTITION OF webhook_log_entries DEFAULT")
    op.execute(
        f"""
        DO $$
        DECLARE
            today date := (now() AT TIME ZONE 'UTC')::date;
            first date := greatest(
                coalesce((SELECT (min(created_at) AT TIME ZONE 'UTC')::date FROM {_OLD}), today),
                today - 30
            );
            day date;
        BEGIN
            FOR day IN SELECT generate_series(first, today + 7, interval '1 day')::date LOOP
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF webhook_log_entries FOR VALUES FROM (%L) TO (%L)',
                    'webhook_log_entries_p' || to_char(day, 'YYYYMMDD'),
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC')
                );
            END LOOP;
        END
        $$
        """  # noqa: S608 - fixed names
    )
    # Rows first, indexes after: one sorted build per partition beats a million index inserts.
    op.execute(f"INSERT INTO webhook_log_entries SELECT * FROM {_OLD}")  # noqa: S608 - fixed names
    op.execute(
        "ALTER TABLE webhook_log_entries ADD CONSTRAINT pk_webhook_log_entries PRIMARY KEY (id, created_at)"
    )
    op.execute(
        "CREATE INDEX ix_webhook_log_entries_app_created ON webhook_log_entries (app_id, created_at, id)"
    )
    op.execute("CREATE INDEX ix_webhook_log_entries_delivery_id ON webhook_log_entries (delivery_id)")
    op.execute(
        "ALTER TABLE webhook_log_entries ADD CONSTRAINT fk_webhook_log_entries_delivery_id_outbound_deliveries "
        "FOREIGN KEY (delivery_id) REFERENCES outbound_deliveries (id) ON DELETE CASCADE"
    )
    op.execute(f"DROP TABLE {_OLD}")


def downgrade() -> None:
    op.execute(f"CREATE TABLE {_OLD} (LIKE webhook_log_entries INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {_OLD} SELECT * FROM webhook_log_entries")  # noqa: S608 - fixed names
    op.execute("DROP TABLE webhook_log_entries")
    op.execute(f"ALTER TABLE {_OLD} RENAME TO webhook_log_entries")
    op.execute("ALTER TABLE webhook_log_entries ADD CONSTRAINT pk_webhook_log_entries PRIMARY KEY (id)")
    op.execute(
        "CREATE INDEX ix_webhook_log_entries_app_created ON webhook_log_entries (app_id, created_at, id)"
    )
    op.execute("CREATE INDEX ix_webhook_log_entries_created_at ON webhook_log_entries (created_at)")
    op.execute("CREATE INDEX ix_webhook_log_entries_delivery_id ON webhook_log_entries (delivery_id)")
    op.execute(
        "ALTER TABLE webhook_log_entries ADD CONSTRAINT fk_webhook_log_entries_delivery_id_outbound_deliveries "
        "FOREIGN KEY (delivery_id) REFERENCES outbound_deliveries (id) ON DELETE CASCADE"
    )
