"""`apps-api admin remove-partner`, a real subprocess on committed data."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.installations import service
from apps_api.models import Event, Organization
from apps_api.platform import service as platform
from apps_api.settings import Settings
from tests.fixtures.apps import installed_org_ids
from tests.fixtures.cli import admin, run_cli
from tests.fixtures.factories import make_app, make_tenant

pytestmark = pytest.mark.subprocess


async def test_remove_partner_uninstalls_and_prints_json(settings: Settings, engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as setup:
        owner = await make_tenant(setup, name="CLI owner", features=["apps", "app_provider"])
        partner = await make_tenant(setup, name="CLI partner")
        await platform.add_partnership(session=setup, a=owner.org_id, b=partner.org_id)
        offered = await make_app(setup, owner.organization, is_available_to_partners=True)
        public = await make_app(setup, owner.organization, is_available_to_anyone=True, is_approved=True)
        installed = []
        for app in (offered, public):
            installation = await service.install_app(
                granter=None, session=setup, organization=partner.organization, app=app, actor=None
            )
            installed.append(installation.id)
        await setup.commit()
    org_ids = [owner.org_id, partner.org_id]
    try:
        result = admin("remove-partner", str(partner.org_id), str(owner.org_id))

        assert result == {
            "organization_ids": [str(partner.org_id), str(owner.org_id)],
            "removed": True,
            "uninstalled_installation_ids": [str(installed[0])],
        }
        async with AsyncSession(engine) as check:
            assert await installed_org_ids(check, offered.id) == set()
            assert await installed_org_ids(check, public.id) == {partner.org_id}
            assert not await platform.are_partners(session=check, a=owner.org_id, b=partner.org_id)
            removed = (
                await check.scalars(
                    select(Event.channel).where(
                        Event.action == "removed", Event.resource_id == str(installed[0])
                    )
                )
            ).all()
            assert f"/api/v5/orgs/{partner.org_id}/app_installations" in removed

        again = admin("remove-partner", str(owner.org_id), str(partner.org_id))
        assert again["removed"] is False and again["uninstalled_installation_ids"] == []
        unknown = run_cli("admin", "remove-partner", str(owner.org_id), str(uuid.uuid4()))
        assert unknown.returncode != 0 and unknown.stdout == ""
        assert "unknown organization" in unknown.stderr
    finally:
        async with AsyncSession(engine) as cleanup:
            await cleanup.execute(delete(Event).where(Event.organization_id.in_(org_ids)))
            await cleanup.execute(delete(Organization).where(Organization.id.in_(org_ids)))
            await cleanup.commit()
