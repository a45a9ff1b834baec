"""Webhook, channel subscription and log entry views, and the event ingestion payload."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, Field, StrictBool, field_validator

from apps_api.catalog.views import AppBase, EmbeddedUser, app_base_json
from apps_api.delivery.matching import pattern_error
from apps_api.kit.schemas import InputSchema, OrganizationEmbed, Schema, UTCDateTime, user_embed_json
from apps_api.outbound.urls import unsendable_reason

MAX_SUBSCRIPTIONS = 100
MAX_URL_LENGTH = 2000
MAX_INGEST_BATCH = 500
LogStatus = Literal["pending", "started", "successful", "failed"]
Action = Literal["added", "changed", "removed"]
Scope = Literal["reports", "settings", "users"]


def _endpoint_url(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"Must be at most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("Must be an absolute http:// or https:// URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or value != value.strip():
        raise ValueError("Must be an absolute http:// or https:// URL.")
    # urlsplit() silently drops tabs and newlines: refuse them (and any control character or
    # space) so that a stored URL can never carry CR/LF into a request line or a log.
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("Must not contain spaces or control characters.")
    if parts.username is not None or parts.password is not None:
        raise ValueError("Must not contain credentials.")
    if parts.fragment:
        raise ValueError("Must not contain a fragment.")
    # The sender's own parser has the last word: what it refuses would fail every attempt.
    reason = unsendable_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _channel_pattern(value: str) -> str:
    error = pattern_error(value)
    if error is not None:
        raise ValueError(error)
    return value


EndpointUrl = Annotated[str, AfterValidator(_endpoint_url)]
ChannelPattern = Annotated[str, AfterValidator(_channel_pattern)]


class ChannelSubscription(Schema):
    channel_pattern: str
    is_additions_subscribed: bool
    is_changes_subscribed: bool
    is_removals_subscribed: bool


class ChannelSubscriptionInput(InputSchema):
    channel_pattern: ChannelPattern = Field(
        description=(
            "Starts with `/api/v5/orgs/{organization_id}/` or `/api/v5/users/{user_id}/`, or equals "
            "`/api/v5/orgs/{app_organization_id}/owned_apps/{app_id}/installations`. Segments are "
            "literals, `*` (exactly one segment) or those placeholders."
        )
    )
    is_additions_subscribed: StrictBool
    is_changes_subscribed: StrictBool
    is_removals_subscribed: StrictBool


def _unique_patterns(value: list[ChannelSubscriptionInput]) -> list[ChannelSubscriptionInput]:
    seen: set[str] = set()
    for subscription in value:
        if subscription.channel_pattern in seen:
            raise ValueError(f"Duplicate channel_pattern `{subscription.channel_pattern}`.")
        seen.add(subscription.channel_pattern)
    return value


Subscriptions = Annotated[
    list[ChannelSubscriptionInput],
    Field(max_length=MAX_SUBSCRIPTIONS, description=f"At most {MAX_SUBSCRIPTIONS}, each pattern once."),
    AfterValidator(_unique_patterns),
]


class WebhookCreate(InputSchema):
    """POST and PUT body: `endpoint_url` required; `channel_subscriptions` replaces the list."""

    endpoint_url: EndpointUrl
    channel_subscriptions: Subscriptions = []


class WebhookUpdate(InputSchema):
    """PATCH body: only the attributes given change."""

    endpoint_url: EndpointUrl | None = None
    channel_subscriptions: Subscriptions | None = None

    @field_validator("endpoint_url", "channel_subscriptions", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("Must not be null.")
        return value


class WebhookApp(AppBase):
    """The app embedded in a webhook (no secret)."""


class Webhook(Schema):
    id: uuid.UUID
    organization_id: uuid.UUID
    organization: OrganizationEmbed
    app_id: uuid.UUID
    app: WebhookApp
    endpoint_url: str
    channel_subscriptions: list[ChannelSubscription]
    created_at: UTCDateTime
    updated_at: UTCDateTime
    created_by_user_id: uuid.UUID | None
    created_by_user: EmbeddedUser | None
    updated_by_user_id: uuid.UUID | None
    updated_by_user: EmbeddedUser | None


class WebhookLogEntry(Schema):
    """One HTTP attempt of a webhook (or of the app's uninstall trigger: `webhook_id` null)."""

    id: uuid.UUID
    created_at: UTCDateTime
    app_id: uuid.UUID
    organization_id: uuid.UUID
    webhook_id: uuid.UUID | None
    endpoint_url: str
    action: str
    resource_id: str
    channel: str
    status: LogStatus
    retry_index: int
    reason: str | None
    response_status_code: int | None
    response_body: str | None
    response_headers: dict[str, str] | None
    duration: int | None
    completed_at: UTCDateTime | None


def webhook_json(row: Any) -> dict[str, Any]:
    """`Webhook` of a row of `repository.WEBHOOKS_PAGE` (tests/test_fast_views.py)."""
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "organization": {"id": row["organization_id"], "name": row["organization_name"]},
        "app_id": row["app_id"],
        "app": app_base_json(row, "app_"),
        "endpoint_url": row["endpoint_url"],
        "channel_subscriptions": orjson.loads(row["channel_subscriptions"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "created_by_user_id": row["created_by_user_id"],
        "created_by_user": user_embed_json(row, "created_by_"),
        "updated_by_user_id": row["updated_by_user_id"],
        "updated_by_user": user_embed_json(row, "updated_by_"),
    }


def log_entry_json(row: Any) -> dict[str, Any]:
    """`WebhookLogEntry` of a row of `repository.LOG_ENTRIES_PAGE` (tests/test_fast_views.py)."""
    view = dict(row)
    view.pop("_other_side", None)  # the keyset probe of a cursor page (kit/pagination.py)
    headers = view["response_headers"]
    view["response_headers"] = None if headers is None else orjson.loads(headers)
    return view


def _channel(value: str) -> str:
    if not value.startswith("/api/v5/") or value.endswith("/") or "//" in value:
        raise ValueError("Must be a concrete API path such as `/api/v5/orgs/<id>/chats`.")
    if any(character in value for character in "{}*?# "):
        raise ValueError("Must be a concrete path: no placeholders, wildcards, query or spaces.")
    return value


class IngestEvent(InputSchema):
    organization_id: uuid.UUID = Field(description="The organization the change happened in.")
    channel: Annotated[str, Field(max_length=500), AfterValidator(_channel)]
    action: Action
    resource_id: Annotated[str, Field(min_length=1, max_length=200)]
    resource: dict[str, Any] = Field(description="The resource (`changed`: only the changed attributes).")
    required_scope: Scope = Field(
        description=(
            "The scope an installation's `allowed_scopes` must include for its webhooks to be notified "
            "(required: an app hears only what its installation allows)."
        )
    )


class IngestBatch(InputSchema):
    events: Annotated[list[IngestEvent], Field(min_length=1, max_length=MAX_INGEST_BATCH)]


class IngestResult(Schema):
    accepted: int = Field(description="How many events were recorded (all or none).")
    event_ids: list[int]
