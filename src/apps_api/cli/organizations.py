"""`apps-api admin` on organizations: create-org, set-features, set-subscription, partners, assets."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.cli.common import run_admin
from apps_api.settings import Settings


def _org_json(organization: Any) -> dict[str, Any]:
    return {
        "id": organization.id,
        "name": organization.name,
        "external_id": organization.external_id,
        "features": organization.features,
        "subscription_active": organization.subscription_active,
        "subscription_expires_at": organization.subscription_expires_at,
    }


def cmd_create_org(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization = await service.create_organization(
            session=session,
            name=args.name,
            features=args.features,
            subscription_days=args.subscription_days,
            external_id=args.external_id,
        )
        return _org_json(organization)

    return run_admin(settings, action)


def cmd_set_features(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization, uninstalled = await service.set_features(
            session=session, organization_id=args.org, features=args.features
        )
        return {**_org_json(organization), "uninstalled_installation_ids": uninstalled}

    return run_admin(settings, action)


def cmd_set_subscription(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        organization = await service.set_subscription(
            session=session, organization_id=args.org, days=args.days
        )
        return _org_json(organization)

    return run_admin(settings, action)


def cmd_add_partner(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        partnership = await service.add_partnership(session=session, a=args.org_a, b=args.org_b)
        return {
            "id": f"{partnership.organization_a_id}:{partnership.organization_b_id}",
            "organization_ids": [partnership.organization_a_id, partnership.organization_b_id],
        }

    return run_admin(settings, action)


def cmd_remove_partner(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.operator import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        removed, uninstalled = await service.end_partnership(session=session, a=args.org_a, b=args.org_b)
        return {
            "organization_ids": [args.org_a, args.org_b],
            "removed": removed,
            "uninstalled_installation_ids": uninstalled,
        }

    return run_admin(settings, action)


def cmd_create_asset(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.platform import service

    async def action(session: AsyncSession) -> dict[str, Any]:
        asset = await service.create_asset(
            session=session, organization_id=args.org, url=args.url, content_type=args.content_type
        )
        return {
            "id": asset.id,
            "organization_id": asset.organization_id,
            "url": asset.url,
            "kind": asset.kind,
        }

    return run_admin(settings, action)
