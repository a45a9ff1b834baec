"""`apps-api admin` on users: create-user, set-permissions, set-password, delete-user, create-token."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.cli.common import CommandError, run_admin
from apps_api.settings import Settings


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "organization_id": user.organization_id,
        "external_id": user.external_id,
        "email": user.email,
        "permissions": user.permissions,
        "is_bot": user.is_bot,
    }


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    if (args.email is None) != (args.password is None):
        raise CommandError("--email and --password go together")

    async def action(session: AsyncSession) -> dict[str, Any]:
        user = await service.create_user(
            session=session,
            organization_id=args.org,
            permissions=args.permissions,
            email=args.email,
            password=args.password,
            first_name=args.first_name,
            last_name=args.last_name,
            external_id=args.external_id,
        )
        return _user_json(user)

    return run_admin(settings, action)


def cmd_set_permissions(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        user = await service.set_permissions(session=session, user_id=args.user, permissions=args.permissions)
        return _user_json(user)

    return run_admin(settings, action)


def cmd_set_password(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        return _user_json(
            await service.set_password(session=session, user_id=args.user, password=args.password)
        )

    return run_admin(settings, action)


def cmd_delete_user(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        return _user_json(await service.delete_user(session=session, user_id=args.user))

    return run_admin(settings, action)


def cmd_create_token(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        token, key = await service.create_token(session=session, user_id=args.user)
        return {"id": token.id, "token": key, "user_id": token.user_id}

    return run_admin(settings, action)
