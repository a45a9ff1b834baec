"""What the commands share: the one-line error, argument types, start-up, and the admin run.

Admin commands print exactly one JSON object on stdout; logs and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.embedded import EmbeddedServices, ensure_services, serving_pid
from apps_api.kit.crypto import configure_encryption
from apps_api.settings import Settings


class CommandError(Exception):
    """A one-line error for stderr; the command exits non-zero."""


def uuid_argument(value: str) -> uuid.UUID:
    """argparse type: a UUID."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value}") from None


def csv_argument(value: str) -> list[str]:
    """argparse type: comma-separated words, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


# Generated per state folder when embedded; with an external database they must be the operator's,
# the same in every process (a random secret key per process breaks cursors and sessions between
# processes; without encryption keys every app read and write fails).
_REQUIRED_WITH_EXTERNAL_DATABASE = (
    ("APPS_API_SECRET_KEY", "signs cursors, session cookies and CSRF tokens; any long random string"),
    ("APPS_API_ENCRYPTION_KEYS", "encrypts app secrets at rest; generate one with `apps-api keygen`"),
)


def check_required_keys(settings: Settings) -> None:
    """With an external database, stop before anything starts when a required key is missing."""
    if settings.database_url is None:
        return
    given = {
        # The default is a random key per process: set means given (by the environment).
        "APPS_API_SECRET_KEY": "secret_key" in settings.model_fields_set
        and bool(settings.secret_key.strip()),
        "APPS_API_ENCRYPTION_KEYS": bool(settings.encryption_keys),
    }
    for variable, purpose in _REQUIRED_WITH_EXTERNAL_DATABASE:
        if not given[variable]:
            raise CommandError(
                f"{variable} is not set; it is required with APPS_API_DATABASE_URL ({purpose})"
            )


def migrate(settings: Settings) -> None:
    """alembic upgrade of the configured (or embedded) database."""
    from apps_api.migrate import upgrade

    assert settings.database_url is not None
    upgrade(settings.database_url)


def prepare(settings: Settings, *, migrate_embedded: bool = True) -> EmbeddedServices:
    """The servers the settings lack started (embedded), encryption configured."""
    services = ensure_services(settings)
    configure_encryption(settings.encryption_keys)
    if migrate_embedded and "postgres" in services.started:
        # Embedded databases are ours to keep at the latest schema.
        migrate(settings)
    return services


async def _in_transaction(settings: Settings, action: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from apps_api.kit.db import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await action(session)
    finally:
        await engine.dispose()


def _print(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


AdminAction = Callable[[AsyncSession], Awaitable[dict[str, Any]]]


def run_admin(settings: Settings, action: AdminAction) -> int:
    """Run `action` in one transaction and print its result as one JSON object."""
    from apps_api.platform.service import PlatformError

    _say_where(settings)
    services = prepare(settings)
    try:
        result = asyncio.run(_in_transaction(settings, action))
    except PlatformError as exc:
        raise CommandError(str(exc)) from None
    finally:
        services.stop()
    _print(result)
    return 0


def _say_where(settings: Settings) -> None:
    """On stderr: the state folder used, and a warning when no `serve` runs on it."""
    if settings.database_url is not None:
        return  # the configured database: no state folder involved
    folder = settings.state_dir.resolve()
    sys.stderr.write(f"apps-api: state folder {folder} (embedded PostgreSQL and Redis)\n")
    if serving_pid(settings.state_dir) is None:
        sys.stderr.write(
            f"apps-api: warning: no `apps-api serve` is running on {folder}; a service started with "
            "another --state-dir will not see this (pass the --state-dir serve uses)\n"
        )
