"""`apps-api migrate`, `keygen`, `demo` and `admin reencrypt`: the schema, the keys, a tenant to try."""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.cli.common import CommandError, migrate, prepare, run_admin
from apps_api.settings import Settings

logger = logging.getLogger("apps_api.cli")


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    services = prepare(settings, migrate_embedded=False)
    try:
        migrate(settings)
        logger.info("database migrated to the latest revision")
    finally:
        services.stop()
    return 0


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.kit.crypto import new_encryption_key

    sys.stdout.write(new_encryption_key() + "\n")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization = await service.create_organization(
            session=session, name="Demo organization", features=["apps", "app_provider"]
        )
        email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
        user = await service.create_user(
            session=session,
            organization_id=organization.id,
            permissions=["settings", "users", "reports"],
            email=email,
            password=args.password,
            first_name="Demo",
            last_name="User",
        )
        _, key = await service.create_token(session=session, user_id=user.id)
        return {
            "organization_id": organization.id,
            "user_id": user.id,
            "token": key,
            "email": email,
            "password": args.password,
        }

    return run_admin(settings, action)


def cmd_reencrypt(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.auth.secrets import reencrypt_secrets
    from apps_api.kit.crypto import EncryptionKeyMissing

    async def action(session: AsyncSession) -> dict[str, Any]:
        try:
            counts = await reencrypt_secrets(session=session)
        except EncryptionKeyMissing as exc:
            raise CommandError(str(exc)) from None
        return {"reencrypted": counts}

    return run_admin(settings, action)
