"""Channel families and events of other services: the channel catalogue's entries, the
operator's registrations and the ingestion payload (POST /internal/v1/events)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from apps_api.kit.schemas import InputSchema, Schema, UTCDateTime, hint, request_body
from apps_api.webhooks.fields import ChannelPattern
from apps_api.webhooks.schemas import LogAction

MAX_INGEST_BATCH = 500
Action = Literal["added", "changed", "removed"]
Scope = Literal["reports", "settings", "users"]


def _channel(value: str) -> str:
    if not value.startswith("/api/v5/") or value.endswith("/") or "//" in value:
        raise ValueError("Must be a concrete API path such as `/api/v5/orgs/<id>/chats`.")
    if any(character in value for character in "{}*?# "):
        raise ValueError("Must be a concrete path: no placeholders, wildcards, query or spaces.")
    return value


class IngestEvent(InputSchema):
    """A change in an organization, to be delivered to the webhooks subscribed to its channel."""

    organization_id: uuid.UUID = Field(description="The organization the change happened in.")
    channel: Annotated[
        str,
        Field(max_length=500),
        AfterValidator(_channel),
        hint(pattern=r"^/api/v5(/[^/{}*?# ]+)+$"),
    ] = Field(description="The concrete API path of the collection, such as `/api/v5/orgs/<id>/chats`.")
    action: Action = Field(description="Resource action, either `added`, `removed` or `changed`.")
    resource_id: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="The ID of the resource."
    )
    resource: dict[str, Any] = Field(description="The resource (`changed`: only the changed attributes).")
    required_scope: Scope = Field(
        description=(
            "The scope an installation's `allowed_scopes` must include for its webhooks to be notified "
            "(required: an app hears only what its installation allows)."
        )
    )


class IngestBatch(InputSchema):
    """Events recorded in one transaction."""

    model_config = request_body(
        example={
            "events": [
                {
                    "organization_id": "0f5b3d2e-8c1a-4e6b-9d7f-2a4c6e8b0d13",
                    "channel": "/api/v5/orgs/0f5b3d2e-8c1a-4e6b-9d7f-2a4c6e8b0d13/chats",
                    "action": "added",
                    "resource_id": "5a7c9e1b-3d5f-4a6b-8c0d-2e4f6a8b0c1d",
                    "resource": {"id": "5a7c9e1b-3d5f-4a6b-8c0d-2e4f6a8b0c1d"},
                    "required_scope": "reports",
                }
            ]
        }
    )

    events: Annotated[list[IngestEvent], Field(min_length=1, max_length=MAX_INGEST_BATCH)] = Field(
        description=f"1 to {MAX_INGEST_BATCH} events."
    )


class IngestResult(Schema):
    """What the ingestion recorded."""

    accepted: int = Field(description="How many events were recorded (all or none).")
    event_ids: list[int] = Field(description="The IDs of the recorded events.")


class WebhookChannel(Schema):
    """A channel family webhooks can subscribe to: its pattern, actions, scope and payloads."""

    id: uuid.UUID = Field(description="The ID of the channel family.")
    pattern: str = Field(description="The channel pattern, as a subscription's `channel_pattern` names it.")
    description: str = Field(description="What the channel's events are about.")
    actions: list[LogAction] = Field(description="The actions sent on the channel.")
    scope: Scope = Field(
        description="The scope an installation's `allowed_scopes` must include for its webhooks to hear it."
    )
    subscribable: bool = Field(
        description="Whether a subscription can name it (false: the test event, sent to one webhook)."
    )
    source: Literal["service", "operator"] = Field(
        description="`service`: this service emits it; `operator`: another service publishes it (registered)."
    )
    resource_schemas: dict[str, dict[str, Any]] = Field(
        description=(
            "Per action, the JSON Schema (2020-12) of the body's `resource` (`changed`: the changed "
            "attributes only)."
        )
    )
    examples: dict[str, dict[str, Any]] = Field(
        description="Per action, an example body as a webhook receives it (without `app_user_auth`)."
    )
    created_at: UTCDateTime = Field(description="When the family was registered.")


def _distinct_actions(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("Each action at most once.")
    return value


class ChannelRegistration(InputSchema):
    """A channel family another service publishes through ingestion (registered by the operator)."""

    model_config = request_body(
        example={
            "pattern": "/api/v5/orgs/{organization_id}/chats",
            "scope": "reports",
            "actions": ["added", "changed", "removed"],
            "description": "Chats of the organization.",
            "resource_schema": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "is_ended": {"type": "boolean"}},
                "required": ["id", "is_ended"],
            },
            "example_resource": {"id": "5a7c9e1b-3d5f-4a6b-8c0d-2e4f6a8b0c1d", "is_ended": False},
        }
    )

    pattern: ChannelPattern = Field(description="The channel pattern its events' channels match.")
    scope: Scope = Field(description="The scope an installation needs to hear it; its events must name it.")
    actions: Annotated[list[Action], Field(min_length=1), AfterValidator(_distinct_actions)] = Field(
        ["added", "changed", "removed"], description="The actions its events may have (default all three)."
    )
    description: Annotated[str, Field(max_length=500)] = Field("", description="What its events are about.")
    resource_schema: dict[str, Any] = Field(
        description=(
            "The JSON Schema (2020-12) of `resource`; for `changed` the same without required attributes "
            "(a change carries the changed attributes only)."
        )
    )
    example_resource: dict[str, Any] | None = Field(
        None, description="An example resource (it must fit the schema): the catalogue's example bodies."
    )
