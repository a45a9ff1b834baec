"""app_installations: an install NOTIFYs the API processes only when its app user has live tokens

Revision ID: 1800_principal_notify_installs
Revises: 1700_principal_notify
Create Date: 2026-12-06 18:00:00+00:00

1700 notified on every INSERT into app_installations, so every install emptied every API
process's principal cache, and under a stream of installs no lookup was ever served from it.
An install changes a cached principal only if its app user already holds a live token (that
token's principal becomes the app's): the service always creates a fresh app user, so that
never happens today, but a row trigger checks it per inserted row (one indexed probe of
`ix_api_tokens_user_id`) rather than relying on it. UPDATE, DELETE and TRUNCATE notify as before.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "1800_principal_notify_installs"
down_revision: str | None = "1700_principal_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP TRIGGER app_installations_notify_principals ON app_installations")
    op.execute(
        "CREATE TRIGGER app_installations_notify_principals AFTER UPDATE OR DELETE OR TRUNCATE "
        "ON app_installations FOR EACH STATEMENT EXECUTE FUNCTION apps_api_notify_principals()"
    )
    op.execute(
        """
        CREATE FUNCTION apps_api_notify_principals_of_install() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (
                SELECT 1 FROM api_tokens WHERE user_id = NEW.app_user_id AND revoked_at IS NULL
            ) THEN
                PERFORM pg_notify('apps_api_principals', '');
            END IF;
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER app_installations_notify_principals_on_insert AFTER INSERT ON app_installations "
        "FOR EACH ROW WHEN (NEW.app_user_id IS NOT NULL) "
        "EXECUTE FUNCTION apps_api_notify_principals_of_install()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER app_installations_notify_principals_on_insert ON app_installations")
    op.execute("DROP FUNCTION apps_api_notify_principals_of_install()")
    op.execute("DROP TRIGGER app_installations_notify_principals ON app_installations")
    op.execute(
        "CREATE TRIGGER app_installations_notify_principals AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
        "ON app_installations FOR EACH STATEMENT EXECUTE FUNCTION apps_api_notify_principals()"
    )
