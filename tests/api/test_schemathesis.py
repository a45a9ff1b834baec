"""schemathesis against the live OpenAPI schema of a real uvicorn server, with a real token.

Two runs, with the checks `not_a_server_error`, `status_code_conformance` (every status an
operation answers is documented), `response_schema_conformance` and
`content_type_conformance`:
- examples, coverage and fuzzing, every path parameter pinned to a real resource;
- the stateful phase over the document's OpenAPI links, only `organization_id` pinned: each
  item id comes from the response that created the item (create an app, then GET, PATCH,
  PUT, DELETE it, add its webhooks and shares, ...). A pinned id would override the links.
An operation counts as tested only when schemathesis sent it and got an answer other than
404 (a fuzzed id that reaches nothing tests nothing), and each create's links must have been
followed. The bounded runs keep the suite fast;
`SCHEMATHESIS_MAX_EXAMPLES` (default 5), `SCHEMATHESIS_STATEFUL_MAX_EXAMPLES` (scenarios, default
40) and `SCHEMATHESIS_MAX_TIME` scale them up (README, "Guarantees", shows the long command);
`SCHEMATHESIS_REPORT_DIR` keeps the NDJSON reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.kit.db import unit_of_work
from apps_api.models import WebhookChannel
from apps_api.settings import Settings
from tests.fixtures.live_server import ApiServer, api_server, committed_tenant
from tests.fixtures.world import World, delete_organizations, populate

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

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
        # The fuzzer registers channel families through the operator's endpoint: they are
        # global (not an organization's), and a leftover one would validate later tests' events.
        async with engine.begin() as connection:
            await connection.execute(delete(WebhookChannel))


ORGS = "/api/v5/orgs/{organization_id}"
# Fields whose rules depend on data (the owner's assets, partners, installable apps): pinned, so
# that generated bodies get past validation and reach the service code.
APP_BODY = {
    "body.terms_of_service_url": "https://fuzz.example.com/tos",
    "body.privacy_policy_url": "https://fuzz.example.com/privacy",
    "body.trigger_url": "https://fuzz.example.com/trigger",
    "body.allowed_redirect_uris": ["https://fuzz.example.com/back"],
    "body.trigger_conditions": ["install"],
    "body.required_scopes": ["users"],
    "body.name": "Fuzzed app",
    "body.description": "Made by schemathesis",
    "body.is_app_user_required": False,
}

WEBHOOK_BODY = {
    "body.endpoint_url": "https://fuzz.example.com/hook",
    "body.channel_subscriptions": [
        {
            "channel_pattern": "/api/v5/orgs/{organization_id}/chats",
            "is_additions_subscribed": True,
            "is_changes_subscribed": False,
            "is_removals_subscribed": True,
        }
    ],
}


def _config(world: World, settings: Settings, *, stateful: bool) -> str:
    """schemathesis.toml: a real token, the ingestion key, real ids where links do not give them.

    For the fuzzing run every path parameter is a real resource; DELETE operations get
    disposable resources of their own, so that fuzzing them does not turn every other
    operation into a 404. For the stateful run only the organization is pinned.
    """
    text = f"""
headers = {{ Authorization = "Token {world.owner.token}" }}

[parameters]
"path.organization_id" = "{world.owner.org_id}"
"""
    if not stateful:
        text += f"""
"path.app_id" = "{world.app.id}"
"path.installation_id" = "{world.installation_id}"
"path.installer_organization_id" = "{world.owner.org_id}"
"path.share_id" = "{world.share_id}"
"path.webhook_id" = "{world.webhook_id}"
"path.entry_id" = "{world.entry_id}"
"""
    if stateful:
        # The declared links only (no transitions guessed from names), in longer chains.
        text += """
[phases.stateful]
max-steps = 10

[phases.stateful.inference]
algorithms = []
"""
    text += f"""
[[operations]]
include-path-regex = "^/internal/v1/"
headers = {{ Authorization = "Bearer {settings.ingest_service_key}" }}
"""
    if stateful:
        # The operator API's chains are fuzzed above; the bounded stateful budget stays with the
        # public API's links (its assertions below).
        text += """
[[operations]]
include-path-regex = "^/internal/v1/organizations"
enabled = false
"""
    overrides: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", ORGS + "/owned_apps", APP_BODY),
        ("PUT", ORGS + "/owned_apps/{app_id}", APP_BODY),
        ("POST", ORGS + "/owned_apps/{app_id}/shares", {"body.organization_id": world.partner.org_id}),
    ]
    if stateful:
        # Not installed yet: the install succeeds, and its links lead to the installation.
        overrides.append(("POST", ORGS + "/app_installations", {"body.app_id": world.public_app_id}))
        # Webhooks that exist, so that the chains reach their item operations.
        for method, path in (("POST", "/webhooks"), ("PUT", "/webhooks/{webhook_id}")):
            overrides.append((method, ORGS + "/owned_apps/{app_id}" + path, WEBHOOK_BODY))
    else:
        overrides += [
            ("GET", "/api/v5/public_apps/{app_id}", {"path.app_id": world.public_app_id}),
            ("GET", ORGS + "/partner_apps/{app_id}", {"path.app_id": world.partner_app_id}),
            ("DELETE", ORGS + "/owned_apps/{app_id}", {"path.app_id": world.disposable_app_id}),
            (
                "DELETE",
                ORGS + "/app_installations/{installation_id}",
                {"path.installation_id": world.disposable_installation_id},
            ),
            (
                "DELETE",
                ORGS + "/owned_apps/{app_id}/installations/{installer_organization_id}",
                {"path.app_id": world.disposable_installed_app_id},
            ),
            (
                "DELETE",
                ORGS + "/owned_apps/{app_id}/shares/{share_id}",
                {"path.share_id": world.disposable_share_id},
            ),
            (
                "DELETE",
                ORGS + "/owned_apps/{app_id}/webhooks/{webhook_id}",
                {"path.webhook_id": world.disposable_webhook_id},
            ),
            ("POST", ORGS + "/app_installations", {"body.app_id": world.installable_app_id}),
        ]
    for method, path, parameters in overrides:
        pinned = ", ".join(f'"{key}" = {_toml(value)}' for key, value in parameters.items())
        text += f"""
[[operations]]
include-name = "{method} {path}"
parameters = {{ {pinned} }}
"""
    return text


@dataclass
class Run:
    returncode: int
    output: str
    events: list[dict[str, Any]]


def _schemathesis(server: ApiServer, config: str, phases: str, *, max_examples: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as folder:
        config_file = Path(folder) / "schemathesis.toml"
        config_file.write_text(config)
        report = Path(folder) / "report.ndjson"
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(config_file),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                max_examples,
                *(
                    ["--max-time", os.environ["SCHEMATHESIS_MAX_TIME"]]
                    if "SCHEMATHESIS_MAX_TIME" in os.environ
                    else []
                ),
                "--phases",
                phases,
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
        keep = os.environ.get("SCHEMATHESIS_REPORT_DIR")  # to read what a run did
        if keep:
            (Path(keep) / f"{phases.replace(',', '-')}.ndjson").write_text(report.read_text())
            (Path(keep) / f"{phases.replace(',', '-')}.txt").write_text(result.stdout + result.stderr)
    return Run(result.returncode, result.stdout + result.stderr, events)


async def test_every_operation_conforms_and_never_5xx(
    server: ApiServer, world: World, settings: Settings
) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    links = _links_by_create(schema)
    assert links, "the document has no links for the stateful phase to follow"

    fuzzing = _schemathesis(
        server,
        _config(world, settings, stateful=False),
        "examples,coverage,fuzzing",
        max_examples=os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"),
    )
    log = "\n--- server log ---\n"
    assert fuzzing.returncode == 0, fuzzing.output[-20000:] + log + server.output()[-5000:]
    # Scenarios of chained calls: enough of them that each link is taken at least once.
    stateful = _schemathesis(
        server,
        _config(world, settings, stateful=True),
        "stateful",
        max_examples=os.environ.get("SCHEMATHESIS_STATEFUL_MAX_EXAMPLES", "40"),
    )
    assert stateful.returncode == 0, stateful.output[-20000:] + log + server.output()[-5000:]

    tested = _tested_operations(fuzzing.events, schema) | _tested_operations(stateful.events, schema)
    # /metrics answers its documented 404 to anyone without the operator's metrics token, which
    # schemathesis does not hold (tests/security/test_security_metrics.py covers both answers).
    operations.discard(("GET", "/metrics"))
    assert operations <= tested, f"operations schemathesis did not reach: {sorted(operations - tested)}"
    # The stateful run pins no item id, so an item operation answered other than 404 there
    # was reached through a link, on a resource just created. Which links a bounded run takes
    # is up to chance: each create that created something must have led somewhere (a create
    # whose prerequisites a scenario never built, such as an app user's token, led nowhere to
    # go), and the owned app to all four.
    followed = _tested_operations(stateful.events, schema, phase="stateful")
    created = _tested_operations(stateful.events, schema, phase="stateful", status=201)
    assert ("POST", ORGS + "/owned_apps") in created
    for create, targets in links.items():
        if create in created:
            assert targets & followed, f"no link of {create} was followed: {sorted(targets)}"
    app_item = ORGS + "/owned_apps/{app_id}"
    assert {(method, app_item) for method in ("GET", "PATCH", "PUT", "DELETE")} <= followed
    assert "Internal server error" not in server.output()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{key}" = {_toml(item)}' for key, item in value.items()) + " }"
    return f'"{value}"'


def _links_by_create(schema: dict[str, Any]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(METHOD, path) of each operation with links -> (METHOD, path) of the operations they lead to."""
    by_id = {
        operation["operationId"]: (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    links: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for response in operation["responses"].values():
                for link in response.get("links", {}).values():
                    links.setdefault((method.upper(), path), set()).add(by_id[link["operationId"]])
    return links


def _route_matcher(schema: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    """Path templates as regular expressions, literal segments before parameters."""
    templates = sorted(schema["paths"], key=lambda path: path.count("{"))
    return [
        (re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"), path)
        for path in templates
    ]


def _tested_operations(
    events: list[dict[str, Any]],
    schema: dict[str, Any],
    *,
    phase: str | None = None,
    status: int | None = None,
) -> set[tuple[str, str]]:
    """(METHOD, path template) of every request schemathesis sent that got an answer other than
    404 (or, given `status`, that answer)."""
    routes = _route_matcher(schema)
    tested: set[tuple[str, str]] = set()
    for event in events:
        finished = event.get("ScenarioFinished")
        if finished is None or (phase is not None and phase not in str(finished.get("phase", "")).lower()):
            continue
        for interaction in finished.get("recorder", {}).get("interactions", {}).values():
            response = interaction.get("response")
            if not response or response.get("status_code") == 404:
                continue
            if status is not None and response.get("status_code") != status:
                continue
            request = interaction["request"]
            path = urlsplit(request["uri"]).path
            method = request["method"].lower()
            template = next(
                (
                    template
                    for pattern, template in routes
                    if pattern.match(path) and method in schema["paths"][template]
                ),
                None,
            )
            if template is not None:
                tested.add((method.upper(), template))
    return tested
