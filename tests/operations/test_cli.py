"""The command line, run as a real subprocess against the test database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from apps_api.kit.security import digest
from apps_api.models import ApiToken, App, Organization, Partnership, User
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.cli import admin, run_cli

pytestmark = pytest.mark.subprocess


@pytest.mark.slow
async def test_admin_commands_create_a_working_tenant(settings: Settings, engine: AsyncEngine) -> None:
    org = admin(
        "create-org", "--name", "CLI Org", "--features", "apps,app_provider", "--subscription-days", "30"
    )
    partner = admin("create-org", "--name", "CLI Partner")
    assert org["features"] == ["app_provider", "apps"] and org["subscription_expires_at"]
    link = admin("add-partner", org["id"], partner["id"])
    assert sorted(link["organization_ids"]) == sorted([org["id"], partner["id"]])
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    user = admin(
        "create-user",
        "--org",
        org["id"],
        "--permissions",
        "settings,reports",
        "--email",
        email,
        "--password",
        "s3cret-pass",
    )
    assert user["permissions"] == ["reports", "settings"]
    token = admin("create-token", "--user", user["id"])
    assert token["user_id"] == user["id"] and len(token["token"]) >= 40
    asset = admin("create-asset", "--org", org["id"], "--url", "https://cdn.example.com/icon.png")
    assert asset["organization_id"] == org["id"]

    async with engine.connect() as connection:
        stored = (
            await connection.execute(select(ApiToken).where(ApiToken.id == uuid.UUID(token["id"])))
        ).one()
        assert stored.key_digest == digest(token["token"])  # only the digest is stored
        password_hash = (
            await connection.execute(select(User.password_hash).where(User.email == email))
        ).scalar()
        assert password_hash and password_hash.startswith("$argon2id$") and "s3cret" not in password_hash
        first, second = sorted([uuid.UUID(org["id"]), uuid.UUID(partner["id"])])
        assert (
            await connection.execute(
                select(Partnership).where(
                    Partnership.organization_a_id == first, Partnership.organization_b_id == second
                )
            )
        ).one()
        await connection.execute(
            Organization.__table__.delete().where(
                Organization.id.in_([uuid.UUID(org["id"]), uuid.UUID(partner["id"])])
            )
        )
        await connection.commit()


async def test_demo_prints_a_token_that_works_against_the_api(
    settings: Settings, engine: AsyncEngine
) -> None:
    demo = json.loads(run_cli("demo").stdout)
    try:
        await _check_demo_token(settings, demo)
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                Organization.__table__.delete().where(Organization.id == uuid.UUID(demo["organization_id"]))
            )


async def _check_demo_token(settings: Settings, demo: dict[str, Any]) -> None:
    assert set(demo) >= {"organization_id", "user_id", "token"}
    # The demo rows are committed by the subprocess, so a real app on the same database sees them.
    from apps_api.main import create_app

    real_app = create_app(settings)
    async with real_app.router.lifespan_context(real_app):
        transport = httpx.ASGITransport(app=real_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(
                "/api/v5/public_apps", headers={"Authorization": f"Token {demo['token']}"}
            )
    assert response.status_code == 200
    assert set(response.json()) == {"next", "previous", "results"}
    forged = demo["token"][:-2] + ("AA" if not demo["token"].endswith("AA") else "BB")
    async with real_app.router.lifespan_context(real_app):
        transport = httpx.ASGITransport(app=real_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            refused = await client.get("/api/v5/public_apps", headers={"Authorization": f"Token {forged}"})
    assert refused.status_code == 401


async def test_approve_app(settings: Settings, engine: AsyncEngine) -> None:
    org = admin("create-org", "--name", "Approver")
    app_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            App.__table__.insert().values(
                id=app_id,
                owned_by_organization_id=uuid.UUID(org["id"]),
                name="A",
                description="d",
                terms_of_service_url="https://e.com/t",
                privacy_policy_url="https://e.com/p",
                secret="s",
                is_available_to_anyone=True,
                is_approved=False,
                is_available_to_partners=False,
                is_app_user_required=False,
                trigger_conditions=[],
                required_scopes=[],
                allowed_redirect_uris=[],
                installation_count=0,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    try:
        approved = admin("approve-app", str(app_id))
        assert approved == {"id": str(app_id), "name": "A", "is_approved": True}
    finally:
        # Committed rows would leak into other tests' views of public apps.
        async with engine.begin() as connection:
            await connection.execute(
                Organization.__table__.delete().where(Organization.id == uuid.UUID(org["id"]))
            )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("admin", "create-org", "--name", "X", "--features", "apps,teleport"), "unknown feature: teleport"),
        (("admin", "create-user", "--org", str(uuid.UUID(int=1))), "unknown organization"),
        (("admin", "create-token", "--user", str(uuid.UUID(int=1))), "unknown user"),
        (("admin", "approve-app", str(uuid.UUID(int=1))), "unknown app"),
        (("admin", "create-user", "--org", "not-a-uuid"), "not a UUID"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(
    settings: Settings, args: tuple[str, ...], message: str
) -> None:
    result = run_cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert message in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1


def test_unknown_permission_is_refused(settings: Settings) -> None:
    org = admin("create-org", "--name", "Perm")
    result = run_cli("admin", "create-user", "--org", org["id"], "--permissions", "settings,root")
    assert result.returncode != 0
    assert "unknown permission: root" in result.stderr
