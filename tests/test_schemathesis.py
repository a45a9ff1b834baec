"""schemathesis against the live OpenAPI schema of a real uvicorn server, with a real token.

Every operation of the schema is exercised (examples, coverage, fuzzing and stateful phases)
with the checks `not_a_server_error`, `status_code_conformance` (every status an operation
answers is documented), `response_schema_conformance` and `content_type_conformance`.
The bounded run here keeps the suite fast; `SCHEMATHESIS_MAX_EXAMPLES` (default 5) and
`SCHEMATHESIS_MAX_TIME` scale it up (README, "Guarantees", shows the long command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.kit.db import unit_of_work
from apps_api.settings import Settings
from tests.live_server import ApiServer, api_server, committed_tenant
from tests.reliability_helpers import World, delete_organizations, populate

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


@pytest.fixture
def server(settings: Settings) -> Iterator[ApiServer]:
    with api_server(APPS_API_LOG_LEVEL="WARNING") as running:
        yield running


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    """Committed: the server is another process. One resource of every kind, deleted afterwards."""
    owner = await committed_tenant(engine, "Fuzz")
    organization_ids = [owner.org_id]
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, unit_of_work(session):
            world = await populate(session, owner, tag="fuzz")
        organization_ids = world.organization_ids
        yield world
    finally:
        await delete_organizations(engine, organization_ids)


def _config(world: World, settings: Settings) -> str:
    """schemathesis.toml: a real token, X in every path, real ids, the ingestion key.

    DELETE operations get disposable resources of their own, so fuzzing them does not turn
    every other operation into a 404.
    """
    orgs = "/api/v5/orgs/{organization_id}"
    overrides = [
        ("GET", "/api/v5/public_apps/{app_id}", {"path.app_id": world.public_app_id}),
        ("GET", orgs + "/partner_apps/{app_id}", {"path.app_id": world.partner_app_id}),
        ("DELETE", orgs + "/owned_apps/{app_id}", {"path.app_id": world.disposable_app_id}),
        (
            "DELETE",
            orgs + "/app_installations/{installation_id}",
            {"path.installation_id": world.disposable_installation_id},
        ),
        (
            "DELETE",
            orgs + "/owned_apps/{app_id}/installations/{installer_organization_id}",
            {"path.app_id": world.disposable_installed_app_id},
        ),
        (
            "DELETE",
            orgs + "/owned_apps/{app_id}/shares/{share_id}",
            {"path.share_id": world.disposable_share_id},
        ),
        (
            "DELETE",
            orgs + "/owned_apps/{app_id}/webhooks/{webhook_id}",
            {"path.webhook_id": world.disposable_webhook_id},
        ),
    ]
    text = f"""
headers = {{ Authorization = "Token {world.owner.token}" }}

[parameters]
"path.organization_id" = "{world.owner.org_id}"
"path.app_id" = "{world.app.id}"
"path.installation_id" = "{world.installation_id}"
"path.installer_organization_id" = "{world.owner.org_id}"
"path.share_id" = "{world.share_id}"
"path.webhook_id" = "{world.webhook_id}"
"path.entry_id" = "{world.entry_id}"

[[operations]]
include-path = "/internal/v1/events"
headers = {{ Authorization = "Bearer {settings.ingest_service_key}" }}
"""
    # Fields whose rules the schema cannot express (URL forms, the owner's assets, partners):
    # pinned, so that generated bodies get past validation and reach the service code.
    app_body = {
        "body.terms_of_service_url": "https://fuzz.example.com/tos",
        "body.privacy_policy_url": "https://fuzz.example.com/privacy",
        "body.trigger_url": "https://fuzz.example.com/trigger",
        "body.allowed_redirect_uris": ["https://fuzz.example.com/back"],
        "body.trigger_conditions": ["install"],
        "body.required_scopes": ["users"],
        # The one input schema serves POST, PUT and PATCH, so it cannot mark these required.
        "body.name": "Fuzzed app",
        "body.description": "Made by schemathesis",
        "body.is_app_user_required": False,
    }
    overrides += [
        ("POST", orgs + "/owned_apps", app_body),
        ("PUT", orgs + "/owned_apps/{app_id}", app_body),
        ("PATCH", orgs + "/owned_apps/{app_id}", app_body),
        ("POST", orgs + "/owned_apps/{app_id}/shares", {"body.organization_id": world.partner.org_id}),
        ("POST", orgs + "/app_installations", {"body.app_id": world.installable_app_id}),
    ]
    for method, path, parameters in overrides:
        pinned = ", ".join(f'"{key}" = {_toml(value)}' for key, value in parameters.items())
        text += f"""
[[operations]]
include-name = "{method} {path}"
parameters = {{ {pinned} }}
"""
    return text


async def test_every_operation_conforms_and_never_5xx(
    server: ApiServer, world: World, settings: Settings
) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as folder:
        config = Path(folder) / "schemathesis.toml"
        config.write_text(_config(world, settings))
        report = Path(folder) / "report.ndjson"
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(config),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"),
                *(
                    ["--max-time", os.environ["SCHEMATHESIS_MAX_TIME"]]
                    if "SCHEMATHESIS_MAX_TIME" in os.environ
                    else []
                ),
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--seed",
                os.environ.get("SCHEMATHESIS_SEED", "20261127"),
                # One worker: CPython 3.11 < 3.11.8 can raise "AST constructor recursion depth
                # mismatch" when threads parse source at once (hypothesis does, for reprs).
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--generation-database",
                "none",
                # NUL bytes too: PostgreSQL refuses them, the API must answer 400, never 500.
                "--generation-allow-x00",
                "true",
                "--no-color",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
            ],
            capture_output=True,
            text=True,
            cwd=folder,
            check=False,
            timeout=900,
        )
        events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:] + "\n--- server log ---\n" + server.output()[-5000:]
    tested = _tested_operations(events)
    assert operations <= tested, f"operations schemathesis did not test: {sorted(operations - tested)}"
    assert "Internal server error" not in server.output()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return f'"{value}"'


def _tested_operations(events: list[dict[str, object]]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the run reported on."""
    tested: set[tuple[str, str]] = set()
    for event in events:
        text = json.dumps(event)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            marker = f'"{method} /'
            start = text.find(marker)
            while start != -1:
                end = text.find('"', start + 1)
                label = text[start + 1 : end]
                tested.add((method, label.split(" ", 1)[1]))
                start = text.find(marker, end)
    return tested
