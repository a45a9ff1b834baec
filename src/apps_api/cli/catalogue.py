"""`apps-api admin` on what apps see: approve-app (public apps), register-channel (webhook channels)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.cli.common import CommandError, run_admin
from apps_api.settings import Settings


def cmd_approve_app(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        app = await service.approve_app(session=session, app_id=args.app)
        return {"id": app.id, "name": app.name, "is_approved": app.is_approved}

    return run_admin(settings, action)


def _json_file(path: str | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: {exc}") from None


def cmd_register_channel(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from apps_api.kit.errors import APIError
    from apps_api.webhooks import channel_registry, channel_schemas

    values = {
        "pattern": args.pattern,
        "scope": args.scope,
        "actions": [action.strip() for action in args.actions.split(",") if action.strip()],
        "description": args.description,
        "resource_schema": _json_file(args.schema_file),
        "example_resource": _json_file(args.example_file),
    }
    try:
        registration = channel_schemas.ChannelRegistration.model_validate(values)
    except ValidationError as exc:
        raise CommandError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None

    async def action(session: AsyncSession) -> dict[str, Any]:
        try:
            entry = await channel_registry.register_channel(session=session, registration=registration)
        except APIError as exc:
            raise CommandError(f"{exc.detail} {exc.errors or ''}".strip()) from None
        return channel_registry.entry_view(entry).model_dump(mode="json")

    return run_admin(settings, action)
