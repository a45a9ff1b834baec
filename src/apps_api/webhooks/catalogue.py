"""The channel catalogue: each channel family with its resource's JSON Schema per action and examples.

The service's own families (`delivery/channels.py`: pattern, actions, scope) get their schemas
from the API's views, so a resource here is what the REST API returns; `changed` carries the
changed attributes only, so its schema requires none. Families other services publish are
registered by the operator (`webhooks/channel_registry.py`). The catalogue is served as
`GET /api/v5/webhook_channels`, as the OpenAPI document's `webhooks` (`document_channels`), and in
the console's webhook form; `POST .../webhooks/{id}/test` sends its examples.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, Field, TypeAdapter

from apps_api.auth.policy import Family, family_of
from apps_api.catalog.views import InstalledApp
from apps_api.delivery import channels
from apps_api.delivery.channels import ChannelFamily
from apps_api.delivery.matching import WILDCARD, split_path
from apps_api.installations.schemas import AppInstallation, OwnedAppInstallation
from apps_api.kit.schemas import Schema, UserEmbed, UTCDateTime
from apps_api.webhooks.schemas import Webhook

Source = Literal["service", "operator"]
# The built-in families' position in the keyset order of the list (they predate any registration).
BUILTIN_CREATED_AT = datetime(2026, 11, 27, tzinfo=UTC)
_ID_NAMESPACE = uuid.UUID("6f1c2b4e-0a5d-4c3e-9b7a-8d2e4f6a1c3b")


class SecretRotated(Schema):
    """The `changed` of an app's secret rotation on its webhooks channel (resource_id: the app)."""

    app_id: uuid.UUID = Field(description="The ID of the app whose secret was rotated.")
    secret_rotated_at: UTCDateTime = Field(description="When the new secret was made.")
    previous_secret_expires_at: UTCDateTime | None = Field(
        description="Until when the previous secret still verifies; null when it stopped at once."
    )


# --- JSON Schemas of the views -------------------------------------------------------------------


def _inline(node: Any, definitions: Mapping[str, Any]) -> Any:
    """`node` with every `#/$defs/...` reference replaced by its definition (the views nest no cycle)."""
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        target = _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        siblings = {key: _inline(value, definitions) for key, value in node.items() if key != "$ref"}
        return {**target, **siblings}
    return {key: _inline(value, definitions) for key, value in node.items() if key != "$defs"}


def view_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a view as the API serializes it, self-contained (no references).

    Self-contained, it is valid on its own (jsonschema) and inline in the OpenAPI document alike.
    """
    schema = TypeAdapter(model).json_schema(mode="serialization")
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined


def changes_schema(schema: Mapping[str, Any], *, title: str | None = None) -> dict[str, Any]:
    """The schema of a `changed` resource: the same attributes, none required."""
    changes = copy.deepcopy(dict(schema))
    changes.pop("required", None)
    changes["title"] = title or f"{schema.get('title', 'Resource')} changes"
    changes["description"] = "The changed attributes only (any subset of these)."
    return changes


def _webhook_changes() -> dict[str, Any]:
    schema = changes_schema(view_schema(Webhook), title="Webhook changes")
    schema["properties"].update(view_schema(SecretRotated)["properties"])
    schema["description"] = (
        "The changed attributes of the webhook (an edit, or an automatic disabling), or, on a secret "
        "rotation (resource_id: the app), `app_id`, `secret_rotated_at` and `previous_secret_expires_at`."
    )
    return schema


# --- examples ------------------------------------------------------------------------------------

# Fixed IDs: an example is the same in every process and document. Sending one to a webhook
# puts the webhook's own organization, app and ID in their place (`example_for_webhook`).
EXAMPLE_ORGANIZATION_ID = "0f5b3d2e-8c1a-4e6b-9d7f-2a4c6e8b0d13"
EXAMPLE_OWNER_ID = "7d2f4a6c-8e0b-4d1f-a3c5-e7092b4d6f81"
EXAMPLE_APP_ID = "3c1e5a7b-9d2f-4b6c-8e0a-1f3b5d7c9e2a"
EXAMPLE_INSTALLATION_ID = "5a7c9e1b-3d5f-4a6b-8c0d-2e4f6a8b0c1d"
EXAMPLE_APP_USER_ID = "9e1b3d5f-7a9c-4e2b-8d4f-6a8c0e2b4d6f"
EXAMPLE_DEVELOPER_ID = "2b4d6f8a-0c2e-4a6c-9e1b-3d5f7a9c1e3b"
EXAMPLE_WEBHOOK_ID = "4d6f8a0c-2e4a-4c8e-b0d2-f4a6c8e0b2d4"
_EXAMPLE_TIME = "2026-12-01T09:30:00Z"
_EXAMPLE_BINDINGS = {
    "organization_id": EXAMPLE_ORGANIZATION_ID,
    "user_id": EXAMPLE_APP_USER_ID,
    "app_organization_id": EXAMPLE_OWNER_ID,
    "app_id": EXAMPLE_APP_ID,
    "webhook_id": EXAMPLE_WEBHOOK_ID,
}


def _dump(model: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    """An example through its view (so it has the view's attributes, checked)."""
    dumped: dict[str, Any] = model.model_validate(value).model_dump(mode="json")
    return dumped


def _app_base() -> dict[str, Any]:
    return {
        "id": EXAMPLE_APP_ID,
        "name": "Weather",
        "description": "Tells visitors the weather at your shop.",
        "owned_by_organization_id": EXAMPLE_OWNER_ID,
        "owned_by_organization": {"id": EXAMPLE_OWNER_ID, "name": "Weather Ltd"},
        "icon_asset_id": None,
        "icon_asset": None,
        "is_app_user_required": True,
        "installation_count": 12,
        "created_at": "2026-11-02T08:00:00Z",
        "updated_at": "2026-11-20T10:15:00Z",
    }


def _user(user_id: str, organization_id: str, first: str, last: str, *, bot: bool) -> dict[str, Any]:
    return {
        "id": user_id,
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}",
        "alias": None,
        "organization_id": organization_id,
        "is_bot": bot,
        "avatar": None,
    }


def _examples() -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """family name -> action -> (resource_id, resource)."""
    installed_app = _dump(InstalledApp, {**_app_base(), "trigger_conditions": ["install", "uninstall"]})
    app_user = _dump(
        UserEmbed, _user(EXAMPLE_APP_USER_ID, EXAMPLE_ORGANIZATION_ID, "Weather", "Bot", bot=True)
    )
    installation = {
        "id": EXAMPLE_INSTALLATION_ID,
        "organization_id": EXAMPLE_ORGANIZATION_ID,
        "organization": {"id": EXAMPLE_ORGANIZATION_ID, "name": "Example Shop"},
        "app_id": EXAMPLE_APP_ID,
        "app": installed_app,
        "app_user_id": EXAMPLE_APP_USER_ID,
        "app_user": app_user,
        "allowed_scopes": ["settings"],
        "created_at": _EXAMPLE_TIME,
        "updated_at": _EXAMPLE_TIME,
    }
    developer = _user(EXAMPLE_DEVELOPER_ID, EXAMPLE_OWNER_ID, "Dana", "Developer", bot=False)
    webhook = _dump(
        Webhook,
        {
            "id": EXAMPLE_WEBHOOK_ID,
            "organization_id": EXAMPLE_OWNER_ID,
            "organization": {"id": EXAMPLE_OWNER_ID, "name": "Weather Ltd"},
            "app_id": EXAMPLE_APP_ID,
            "app": _app_base(),
            "endpoint_url": "https://weather.example.com/webhooks",
            "channel_subscriptions": [
                {
                    "channel_pattern": channels.OWNED_APP_INSTALLATIONS.pattern,
                    "is_additions_subscribed": True,
                    "is_changes_subscribed": False,
                    "is_removals_subscribed": True,
                }
            ],
            "created_at": _EXAMPLE_TIME,
            "updated_at": _EXAMPLE_TIME,
            "created_by_user_id": EXAMPLE_DEVELOPER_ID,
            "created_by_user": developer,
            "updated_by_user_id": EXAMPLE_DEVELOPER_ID,
            "updated_by_user": developer,
            "is_disabled": False,
            "disabled_at": None,
            "disabled_reason": None,
            "last_success_at": None,
            "last_failure_at": None,
            "delivery_stats": {
                "successful": 0,
                "failed": 0,
                "pending": 0,
                "p50_duration_ms": None,
                "p95_duration_ms": None,
            },
        },
    )
    the_installation = (EXAMPLE_INSTALLATION_ID, _dump(AppInstallation, installation))
    owned_installation = (EXAMPLE_INSTALLATION_ID, _dump(OwnedAppInstallation, installation))
    the_app = (EXAMPLE_APP_ID, installed_app)
    the_webhook = (EXAMPLE_WEBHOOK_ID, webhook)
    return {
        channels.APP_INSTALLATIONS.name: {"added": the_installation, "removed": the_installation},
        channels.INSTALLED_APPS.name: {
            "added": the_app,
            "changed": (
                EXAMPLE_APP_ID,
                {"description": "Tells visitors the weather, hourly.", "updated_at": _EXAMPLE_TIME},
            ),
            "removed": the_app,
        },
        channels.USERS.name: {
            "added": (EXAMPLE_APP_USER_ID, app_user),
            "removed": (EXAMPLE_APP_USER_ID, app_user),
        },
        channels.OWNED_APP_INSTALLATIONS.name: {"added": owned_installation, "removed": owned_installation},
        channels.WEBHOOKS.name: {
            "added": the_webhook,
            "changed": (
                EXAMPLE_WEBHOOK_ID,
                {"endpoint_url": "https://weather.example.com/webhooks/v2", "updated_at": _EXAMPLE_TIME},
            ),
            "removed": the_webhook,
        },
        channels.WEBHOOK_TEST.name: {"test": the_webhook},
    }


def _resource_schemas(family: ChannelFamily) -> dict[str, dict[str, Any]]:
    """action -> the JSON Schema of the resource, for a family of the service."""
    models: dict[str, type[BaseModel]] = {
        channels.APP_INSTALLATIONS.name: AppInstallation,
        channels.INSTALLED_APPS.name: InstalledApp,
        channels.USERS.name: UserEmbed,
        channels.OWNED_APP_INSTALLATIONS.name: OwnedAppInstallation,
        channels.WEBHOOKS.name: Webhook,
        channels.WEBHOOK_TEST.name: Webhook,
    }
    full = view_schema(models[family.name])
    changed = _webhook_changes() if family is channels.WEBHOOKS else changes_schema(full)
    return {action: changed if action == "changed" else full for action in family.actions}


# --- the catalogue's entries ---------------------------------------------------------------------


def example_channel(pattern: str) -> str:
    """A concrete channel of a pattern, its placeholders filled with the example IDs."""
    for name, value in _EXAMPLE_BINDINGS.items():
        pattern = pattern.replace("{" + name + "}", value)
    return pattern.replace("*", "example")


def example_body(*, pattern: str, action: str, resource_id: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A delivery body as a webhook receives it (without `app_user_auth`, minted per attempt)."""
    return {
        "channel": example_channel(pattern),
        "action": action,
        "resource_id": resource_id,
        "resource": resource,
    }


@dataclass(frozen=True)
class CatalogueEntry:
    """One channel family as the catalogue shows it."""

    id: uuid.UUID
    name: str
    pattern: str
    description: str
    actions: tuple[str, ...]
    scope: str
    subscribable: bool
    source: Source
    resource_schemas: dict[str, dict[str, Any]]
    # action -> an example body; an operator's family may have none.
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: datetime = BUILTIN_CREATED_AT

    def position(self) -> tuple[datetime, uuid.UUID]:
        """Its place in the keyset order of the list."""
        return self.created_at, self.id


def _builtin_entries() -> tuple[CatalogueEntry, ...]:
    examples = _examples()
    entries = []
    for family in channels.FAMILIES:
        bodies = {
            action: example_body(
                pattern=family.pattern, action=action, resource_id=resource_id, resource=resource
            )
            for action, (resource_id, resource) in examples[family.name].items()
        }
        entries.append(
            CatalogueEntry(
                id=uuid.uuid5(_ID_NAMESPACE, family.name),
                name=family.name,
                pattern=family.pattern,
                description=family.description,
                actions=family.actions,
                scope=family.scope,
                subscribable=family.subscribable,
                source="service",
                resource_schemas=_resource_schemas(family),
                examples=bodies,
            )
        )
    return tuple(entries)


BUILTIN: tuple[CatalogueEntry, ...] = _builtin_entries()
BUILTIN_BY_PATTERN = {entry.pattern: entry for entry in BUILTIN}


def pattern_matches(pattern: str, channel: str) -> bool:
    """Whether a concrete channel is one of the pattern's: a placeholder or `*` stands for one segment."""
    expected, given = split_path(pattern), split_path(channel)
    return len(expected) == len(given) and all(
        segment in (value, WILDCARD) or (segment.startswith("{") and segment.endswith("}"))
        for segment, value in zip(expected, given, strict=True)
    )


def entries_of(channel: str, entries: Sequence[CatalogueEntry]) -> list[CatalogueEntry]:
    """The entries whose pattern the concrete channel matches."""
    return [entry for entry in entries if pattern_matches(entry.pattern, channel)]


def entries_subscribed(pattern: str, entries: Sequence[CatalogueEntry]) -> list[CatalogueEntry]:
    """The entries a subscription's pattern hears: its own, or those its wildcards cover."""
    return [
        entry
        for entry in entries
        if entry.pattern == pattern or pattern_matches(pattern, example_channel(entry.pattern))
    ]


def scope_not_required(entry: CatalogueEntry, required_scopes: Sequence[str]) -> str | None:
    """The scope the entry needs that an app's `required_scopes` lack (so an installation need not
    grant it, and the app's webhooks may hear nothing), or None. The provider's own channels need
    no installer scope (auth/policy.py)."""
    if family_of(entry.pattern) is Family.PROVIDER or entry.scope in required_scopes:
        return None
    return entry.scope


def example_for_webhook(
    entry: CatalogueEntry,
    action: str,
    *,
    organization_id: uuid.UUID,
    app_id: uuid.UUID,
    webhook_id: uuid.UUID,
) -> dict[str, Any] | None:
    """The entry's example body of `action` with the webhook's owner, app and ID in place of the examples'."""
    body = entry.examples.get(action)
    if body is None:
        return None
    text = orjson.dumps(body).decode()
    for example, real in (
        (EXAMPLE_OWNER_ID, organization_id),
        (EXAMPLE_APP_ID, app_id),
        (EXAMPLE_WEBHOOK_ID, webhook_id),
    ):
        text = text.replace(example, str(real))
    if family_of(entry.pattern) is Family.PROVIDER:
        # The provider's channels are in its own organization.
        text = text.replace(EXAMPLE_ORGANIZATION_ID, str(organization_id))
    resolved: dict[str, Any] = orjson.loads(text)
    return resolved


# --- the OpenAPI document's `webhooks` -----------------------------------------------------------

APP_USER_AUTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Present when the installation that hears the event has an app user: its short-lived API "
        "token, used as `Authorization: Bearer <access_token>`."
    ),
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "const": "Bearer"},
        "expires_in": {"type": "integer", "description": "Seconds until the token expires."},
        "user_id": {"type": "string", "format": "uuid"},
        "organization_id": {"type": "string", "format": "uuid"},
    },
    "required": ["access_token", "token_type", "expires_in", "user_id", "organization_id"],
}


def body_schema(entry: CatalogueEntry) -> dict[str, Any]:
    """The JSON Schema of a delivery body of the entry's channels: one variant per action."""

    def variant(action: str) -> dict[str, Any]:
        return {
            "type": "object",
            "title": f"{entry.name} {action}",
            "properties": {
                "channel": {
                    "type": "string",
                    "description": f"The concrete channel: `{entry.pattern}` with its placeholders filled.",
                },
                "action": {"type": "string", "const": action},
                "resource_id": {"type": "string", "description": "The ID of the resource."},
                "resource": entry.resource_schemas[action],
                "app_user_auth": APP_USER_AUTH_SCHEMA,
            },
            "required": ["channel", "action", "resource_id", "resource"],
        }

    variants = [variant(action) for action in entry.actions]
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


def _document(entry: CatalogueEntry) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": body_schema(entry)}
    if entry.examples:
        content["examples"] = {action: {"value": body} for action, body in entry.examples.items()}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


async def _receiver() -> None:
    """Documentation only: the integrator's endpoint receives this (never routed here)."""


def document_channels(app: FastAPI, entries: Sequence[CatalogueEntry] = BUILTIN) -> None:
    """One OpenAPI `webhooks` entry per channel family: what the webhook's endpoint receives."""
    for entry in entries:
        app.webhooks.add_api_route(
            entry.name,
            _receiver,
            methods=["POST"],
            name=f"channel_{entry.name}",
            summary=f"{entry.pattern} ({', '.join(entry.actions)})",
            description=(
                f"{entry.description}\n\nScope an installation needs: `{entry.scope}`. Signed with the "
                "Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) keyed "
                "with the app secret; any 2xx response acknowledges it."
            ),
            tags=["Webhook channels"],
            status_code=200,
            responses={200: {"description": "Any 2xx acknowledges the delivery; anything else is retried."}},
            generate_unique_id_function=lambda route: route.name,
            openapi_extra=_document(entry),
        )
