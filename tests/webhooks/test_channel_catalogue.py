"""The channel catalogue: every event the service emits fits its family's schema; the list; OpenAPI."""

from __future__ import annotations

import copy
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery import channels
from apps_api.delivery.health import disable_failing_webhooks
from apps_api.models import Event, OutboundDelivery, Webhook, WebhookChannelSubscription
from apps_api.models.base import utcnow
from apps_api.webhooks.catalogue import BUILTIN, CatalogueEntry, body_schema, entries_of
from tests.fixtures.apps import install_via_api, installations_url, owned_url
from tests.fixtures.console import csrf, sign_in
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.installflow import make_installer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from update_openapi_snapshot import render  # noqa: E402


def strict(schema: Any) -> Any:
    """The schema with no attribute beyond those it names, at every level: a new attribute in a view
    that the catalogue does not describe fails the check (the published schemas stay open)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if "properties" in tightened:
        tightened.setdefault("additionalProperties", False)
    return tightened


def check(entry: CatalogueEntry, action: str, resource: dict[str, Any]) -> None:
    assert action in entry.actions, f"{entry.pattern} does not list action {action}"
    jsonschema.Draft202012Validator(strict(entry.resource_schemas[action])).validate(resource)


def the_entry(channel: str) -> CatalogueEntry:
    found = entries_of(channel, BUILTIN)
    assert len(found) == 1, f"{channel} is in {len(found)} families of the catalogue"
    return found[0]


async def test_every_emitted_event_fits_its_schema(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    owner = other_tenant
    app = await make_app(
        session,
        owner.organization,
        is_available_to_anyone=True,
        is_approved=True,
        is_app_user_required=True,
        app_user_default_first_name="Chatty",
        app_user_default_last_name="Bot",
        required_scopes=["users"],
    )
    installed = await install_via_api(client, tenant, app.id, allowed_scopes=["users"])
    edited = await client.patch(
        owned_url(owner, app.id), json={"description": "Edited"}, headers=owner.headers
    )
    assert edited.status_code == 200, edited.text
    hooks = owned_url(owner, app.id, "/webhooks")
    created = await client.post(
        hooks,
        json={
            "endpoint_url": "https://bot.example.com/hook",
            "channel_subscriptions": [
                {
                    "channel_pattern": channels.USERS.pattern,
                    "is_additions_subscribed": True,
                    "is_changes_subscribed": True,
                    "is_removals_subscribed": True,
                }
            ],
        },
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    hook = f"{hooks}/{created.json()['id']}"
    patched = await client.patch(
        hook, json={"endpoint_url": "https://bot.example.com/v2"}, headers=owner.headers
    )
    assert patched.status_code == 200, patched.text
    rotated = await client.post(
        owned_url(owner, app.id, "/rotate_secret"), json={"grace_period_seconds": 60}, headers=owner.headers
    )
    assert rotated.status_code == 200, rotated.text
    tested = await client.post(f"{hook}/test", headers=owner.headers)
    assert tested.status_code == 202, tested.text
    # Deleting the webhook drops its deliveries: read the test's body now.
    test_event = (OutboundDelivery.action == "test", OutboundDelivery.app_id == app.id)
    sent = (await session.scalars(select(OutboundDelivery).where(*test_event))).one()
    # The worker's automatic disabling.
    now = utcnow()
    await session.execute(
        update(Webhook)
        .where(Webhook.id == created.json()["id"])
        .values(failing_since=now - timedelta(days=6), failures_in_streak=10)
    )
    assert await disable_failing_webhooks(session=session, now=now, after_days=5, min_failures=10)
    assert (await client.delete(hook, headers=owner.headers)).status_code == 204
    uninstalled = await client.delete(installations_url(tenant, installed["id"]), headers=tenant.headers)
    assert uninstalled.status_code == 204

    seen: set[tuple[str, str]] = set()
    # This test's events only: other tests (schemathesis's ingestion, say) commit events of their own.
    ours = Event.organization_id.in_([tenant.org_id, owner.org_id])
    rows = (await session.scalars(select(Event).where(ours).order_by(Event.id))).all()
    for event in rows:
        entry = the_entry(event.channel)
        check(entry, event.action, event.resource)
        assert event.required_scope == entry.scope, event.channel
        seen.add((entry.name, event.action))
    entry = the_entry(sent.payload["channel"])
    check(entry, "test", sent.payload["resource"])
    seen.add((entry.name, "test"))
    # Every action of every family was exercised: the check above covers the whole catalogue.
    assert seen == {(entry.name, action) for entry in BUILTIN for action in entry.actions}


def test_a_new_attribute_in_a_view_fails_the_check() -> None:
    """The check can fail: an attribute the catalogue does not describe is refused."""
    entry = the_entry("/api/v5/orgs/x/users")
    resource = copy.deepcopy(entry.examples["added"]["resource"])
    check(entry, "added", resource)
    resource["nickname"] = "Bob"
    try:
        check(entry, "added", resource)
    except jsonschema.ValidationError as error:
        assert "nickname" in error.message
    else:
        raise AssertionError("an undescribed attribute passed")


def test_examples_fit_their_schemas() -> None:
    for entry in BUILTIN:
        assert set(entry.examples) == set(entry.actions)
        for action, body in entry.examples.items():
            assert the_entry(body["channel"]) is entry
            check(entry, action, body["resource"])
            jsonschema.Draft202012Validator(body_schema(entry)).validate(body)


async def test_the_list_is_paginated_and_complete(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url: str | None = "/api/v5/webhook_channels?page_size=4"
    listed: list[dict[str, Any]] = []
    while url is not None:
        response = await client.get(url, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["results"]) <= 4
        listed.extend(page["results"])
        url = page["next"]
    assert len(listed) == len(BUILTIN)
    assert sorted(item["pattern"] for item in listed) == sorted(
        family.pattern for family in channels.FAMILIES
    )
    users = next(item for item in listed if item["pattern"] == channels.USERS.pattern)
    assert users["scope"] == "users" and users["actions"] == ["added", "removed"]
    assert users["source"] == "service" and users["subscribable"] is True
    assert users["resource_schemas"]["added"]["properties"]["is_bot"]["type"] == "boolean"
    assert users["examples"]["added"]["resource"]["is_bot"] is True
    test = next(item for item in listed if item["actions"] == ["test"])
    assert test["subscribable"] is False


def test_openapi_documents_each_channel_with_its_bodies() -> None:
    document = json.loads(render())
    assert set(document["webhooks"]) == {entry.name for entry in BUILTIN}
    for entry in BUILTIN:
        body = document["webhooks"][entry.name]["post"]["requestBody"]["content"]["application/json"]
        validator = jsonschema.Draft202012Validator(body["schema"])
        assert set(body["examples"]) == set(entry.actions)
        for example in body["examples"].values():
            validator.validate(example["value"])
        assert not validator.is_valid({"channel": "/x", "action": "nope", "resource_id": "1", "resource": {}})


# --- the console's webhook form ------------------------------------------------------------------


async def test_console_picker_shows_scopes_and_warns(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_installer(session, name="Bot Makers", features=["apps", "app_provider"])
    app = await make_app(session, provider.organization, required_scopes=["settings"])
    await sign_in(client, provider.user.email)
    token = await csrf(client)

    form = await client.get(f"/console/apps/{app.id}/webhooks/new")
    assert form.status_code == 200
    assert "/chats" not in form.text  # no example of a channel the service never sends
    for entry in BUILTIN:
        assert entry.pattern in form.text
    assert f"{channels.USERS.pattern} (scope: users, not required by this app)" in form.text
    assert f"{channels.APP_INSTALLATIONS.pattern} (scope: settings)" in form.text
    # Whole patterns stay visible: a wrapping text area, not a cut-off one-line input.
    assert '<textarea id="sub-0-pattern"' in form.text

    # A pick with nothing typed subscribes to the picked channel (no script needed).
    created = await client.post(
        f"/console/apps/{app.id}/webhooks",
        data={
            "csrf_token": token,
            "endpoint_url": "https://hooks.example/x",
            "sub-0-pattern": "",
            "sub-0-pick": channels.USERS.pattern,
            "sub-0-added": "on",
            "sub-1-pattern": channels.APP_INSTALLATIONS.pattern,
            "sub-1-added": "on",
        },
    )
    assert created.status_code == 303, created.text
    rows = await session.scalars(
        select(WebhookChannelSubscription)
        .where(WebhookChannelSubscription.app_id == app.id)
        .order_by(WebhookChannelSubscription.position)
    )
    patterns = [row.channel_pattern for row in rows]
    assert patterns == [channels.USERS.pattern, channels.APP_INSTALLATIONS.pattern]
    edit = await client.get(created.headers["location"].split("?")[0])
    assert '<p class="warning" id="sub-0-warning" role="status">' in edit.text
    assert 'id="sub-1-warning" role="status" hidden' in edit.text
