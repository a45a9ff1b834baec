"""api_tokens, users, organizations, app_installations: NOTIFY the API processes on change

Revision ID: 1700_principal_notify
Revises: 1600_inspect
Create Date: 2026-12-06 17:00:00+00:00

Every API process caches the principal of an API token (auth/principal_cache.py): the token's
row joined to its user, organization and the installation whose app user it is. Statement-level
triggers on those four tables send `NOTIFY apps_api_principals` and every process empties its
cache, whichever writer made the change (API, `apps-api admin`, the operator API, raw SQL).
PostgreSQL delivers a notification only when its transaction commits and folds identical ones
of a transaction into one, so a write costs no extra round trip and a rollback wakes nobody.

Inserts of tokens, users and organizations change no principal already cached (a key nobody has
used yet is never in a cache); an installation's insert does (its app user's tokens become an
app's). Nothing updates these tables per request (no "last used" column), so any UPDATE
notifies. TRUNCATE too, for completeness.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1700_principal_notify"
down_revision: str | None = "1600_inspect"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENTS = {
    "api_tokens": "UPDATE OR DELETE OR TRUNCATE",
    "users": "UPDATE OR DELETE OR TRUNCATE",
    "organizations": "UPDATE OR DELETE OR TRUNCATE",
    "app_installations": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
}


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION apps_api_notify_principals() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('apps_api_principals', '');
            RETURN NULL;
        END;
        $$
        """
    )
    for table, events in _EVENTS.items():
        op.execute(
            f"CREATE TRIGGER {table}_notify_principals AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION apps_api_notify_principals()"
        )


def downgrade() -> None:
    for table in _EVENTS:
        op.execute(f"DROP TRIGGER {table}_notify_principals ON {table}")
    op.execute("DROP FUNCTION apps_api_notify_principals()")
