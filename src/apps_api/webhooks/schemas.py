"""Webhook, channel subscription and log entry views, and the inputs of the webhook routes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, Field, StrictBool, field_validator

from apps_api.catalog.views import AppBase, EmbeddedUser, app_base_json
from apps_api.delivery.matching import (
    APP_ORGANIZATION_ID,
    INSTALLATIONS_PATTERN,
    MAX_PATTERN_LENGTH,
    ORG_PREFIX,
    USER_PREFIX,
)
from apps_api.kit.schemas import (
    InputDateTime,
    InputSchema,
    OrganizationEmbed,
    Schema,
    UTCDateTime,
    request_body,
    resource_view,
    user_embed_json,
)
from apps_api.webhooks.fields import MAX_URL_LENGTH, ChannelPattern, EndpointUrl

MAX_SUBSCRIPTIONS = 100
# The wire values of `AttemptStatus` (tests/webhooks/test_endpoint_care.py checks they agree).
LogStatus = Literal["pending", "started", "successful", "failed"]
LogAction = Literal["added", "changed", "removed", "test"]


_CHANNEL_PATTERN = (
    "The channel pattern i.e. basically some API endpoint in specific format: it starts with "
    f"`{ORG_PREFIX}` or `{USER_PREFIX}`, or equals `{INSTALLATIONS_PATTERN}`. After the prefix, each "
    "segment is a literal, `*` (exactly one segment) or a placeholder. `{organization_id}` matches "
    "the organization that installed the app, `{user_id}` its app user, "
    f"`{APP_ORGANIZATION_ID}` the app's owner."
)
_ADDITIONS = "Whether a webhook is sent when new resource is added to the collection."
_CHANGES = "Whether a webhook is sent when resource changes happen for a item."
_REMOVALS = "Whether a webhook is sent when a resource is removed from the collection."


class ChannelSubscription(Schema):
    """Which channel's notifications a webhook receives, and for which actions."""

    model_config = resource_view(
        editable=(
            "channel_pattern",
            "is_additions_subscribed",
            "is_changes_subscribed",
            "is_removals_subscribed",
        )
    )

    channel_pattern: str = Field(description=_CHANNEL_PATTERN)
    is_additions_subscribed: bool = Field(description=_ADDITIONS)
    is_changes_subscribed: bool = Field(description=_CHANGES)
    is_removals_subscribed: bool = Field(description=_REMOVALS)


class ChannelSubscriptionInput(InputSchema):
    """A channel subscription of a webhook."""

    channel_pattern: ChannelPattern = Field(description=_CHANNEL_PATTERN)
    is_additions_subscribed: StrictBool = Field(description=_ADDITIONS)
    is_changes_subscribed: StrictBool = Field(description=_CHANGES)
    is_removals_subscribed: StrictBool = Field(description=_REMOVALS)


def _unique_patterns(value: list[ChannelSubscriptionInput]) -> list[ChannelSubscriptionInput]:
    seen: set[str] = set()
    for subscription in value:
        if subscription.channel_pattern in seen:
            raise ValueError(f"Duplicate channel_pattern `{subscription.channel_pattern}`.")
        seen.add(subscription.channel_pattern)
    return value


Subscriptions = Annotated[
    list[ChannelSubscriptionInput],
    Field(max_length=MAX_SUBSCRIPTIONS),
    AfterValidator(_unique_patterns),
]
_ENDPOINT_URL = (
    "URL to which the webhook is sent: an absolute http:// or https:// URL without credentials or "
    f"fragment, at most {MAX_URL_LENGTH} characters."
)
_SUBSCRIPTIONS = (
    "List of channel subscriptions objects; it replaces the webhook's list. "
    f"At most {MAX_SUBSCRIPTIONS}, each channel_pattern once."
)
_WEBHOOK_EXAMPLE = {
    "endpoint_url": "https://bot.example.com/webhooks",
    "channel_subscriptions": [
        {
            "channel_pattern": INSTALLATIONS_PATTERN,
            "is_additions_subscribed": True,
            "is_changes_subscribed": False,
            "is_removals_subscribed": True,
        }
    ],
}


class WebhookCreate(InputSchema):
    """Body of creating (POST) or replacing (PUT) a webhook: `channel_subscriptions` left out means none."""

    model_config = request_body(example=_WEBHOOK_EXAMPLE)

    endpoint_url: EndpointUrl = Field(description=_ENDPOINT_URL)
    channel_subscriptions: Subscriptions = Field([], description=_SUBSCRIPTIONS + " Default empty.")

    def as_update(self) -> WebhookUpdate:
        """The same change as an update that gives every attribute (a PUT is a PATCH of all of them)."""
        # Validated already, as this model: constructing skips validating the same values twice.
        return WebhookUpdate.model_construct(
            endpoint_url=self.endpoint_url, channel_subscriptions=self.channel_subscriptions
        )


class WebhookUpdate(InputSchema):
    """Body of updating (PATCH) a webhook: only the attributes given change."""

    model_config = request_body(
        example={"endpoint_url": "https://bot.example.com/webhooks/v2"},
        not_null=("endpoint_url", "channel_subscriptions", "is_disabled"),
    )

    # None is the "not given" placeholder (null itself is refused below).
    endpoint_url: EndpointUrl | None = Field(None, description=_ENDPOINT_URL)
    channel_subscriptions: Subscriptions | None = Field(None, description=_SUBSCRIPTIONS)
    is_disabled: StrictBool | None = Field(
        None,
        description=(
            "`false` re-enables a disabled webhook (its failure count starts again); `true` disables it: "
            "its pending notifications end failed and new events skip it."
        ),
    )

    @field_validator("endpoint_url", "channel_subscriptions", "is_disabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("Must not be null.")
        return value


class DeliveryStats(Schema):
    """The webhook's attempts of the last 24 hours."""

    successful: int = Field(description="Attempts that succeeded in the last 24 hours.")
    failed: int = Field(description="Attempts that failed in the last 24 hours.")
    pending: int = Field(description="Attempts scheduled or in progress, created in the last 24 hours.")
    p50_duration_ms: int | None = Field(
        description="Median duration in milliseconds of the completed attempts; null without any."
    )
    p95_duration_ms: int | None = Field(
        description="95th percentile duration in milliseconds of the completed attempts; null without any."
    )


class WebhookApp(AppBase):
    """The app embedded in a webhook (no secret)."""


class Webhook(Schema):
    """A URL of an owned app that receives notifications of the channels it subscribes to."""

    model_config = resource_view(editable=("endpoint_url", "channel_subscriptions", "is_disabled"))

    id: uuid.UUID = Field(description="The ID of the webhook.")
    organization_id: uuid.UUID = Field(description="The ID of the organization that owns the webhook.")
    organization: OrganizationEmbed = Field(
        description="The organization resource to which owns the webhook."
    )
    app_id: uuid.UUID = Field(description="The ID of the app which uses this webhook.")
    app: WebhookApp = Field(description="The app resource that is using the webhook.")
    endpoint_url: str = Field(description="URL to which the webhook is sent.")
    channel_subscriptions: list[ChannelSubscription] = Field(
        description="List of channel subscriptions objects."
    )
    created_at: UTCDateTime = Field(description="When the webhook was created.")
    updated_at: UTCDateTime = Field(description="When the webhook was updated.")
    created_by_user_id: uuid.UUID | None = Field(description="ID of the user who created this webhook.")
    created_by_user: EmbeddedUser | None = Field(description="The user resource created this webhook.")
    updated_by_user_id: uuid.UUID | None = Field(description="ID of the user who last updated this webhook.")
    updated_by_user: EmbeddedUser | None = Field(
        description="The user resource who last updated this webhook."
    )
    is_disabled: bool = Field(
        description=(
            "Whether the webhook is disabled: it then receives no notifications. Set automatically when "
            "every attempt has failed for `APPS_API_WEBHOOK_DISABLE_AFTER_DAYS` (5) days with at least "
            "10 failed attempts; PATCH `false` re-enables it."
        )
    )
    disabled_at: UTCDateTime | None = Field(description="When the webhook was disabled; null while enabled.")
    disabled_reason: str | None = Field(description="Why the webhook was disabled; null while enabled.")
    last_success_at: UTCDateTime | None = Field(description="When an attempt last succeeded; null if never.")
    last_failure_at: UTCDateTime | None = Field(description="When an attempt last failed; null if never.")
    delivery_stats: DeliveryStats = Field(
        description="Counts and durations of the webhook's attempts in the last 24 hours."
    )


HEALTH_FIELDS = ("is_disabled", "disabled_at", "disabled_reason", "last_success_at", "last_failure_at")


class RecoverRequest(InputSchema):
    """Body of recovering a webhook's failed notifications."""

    model_config = request_body(example={"since": "2026-11-30T08:00:00Z"})

    since: InputDateTime = Field(
        description=(
            "Requeue the deliveries that ended failed at or after this time; at most "
            "`APPS_API_WEBHOOK_LOG_RETENTION_DAYS` (7) days ago. ISO-8601; no offset means UTC."
        )
    )


class RecoverResult(Schema):
    """What a recovery scheduled."""

    requeued: int = Field(description="How many failed deliveries got one new attempt.")


class WebhookLogEntry(Schema):
    """One HTTP attempt of a webhook (or of the app's uninstall trigger: `webhook_id` null)."""

    id: uuid.UUID = Field(description="The ID of the log entry.")
    created_at: UTCDateTime = Field(description="When the log entry was created.")
    app_id: uuid.UUID = Field(description="The ID of the app.")
    organization_id: uuid.UUID = Field(description="The ID of the app owner organization.")
    webhook_id: uuid.UUID | None = Field(
        description="The ID of the webhook; null for an attempt of the app's uninstall trigger."
    )
    endpoint_url: str = Field(
        description=(
            "The request URL of the attempt: the webhook's URL when the attempt started "
            "(a pending attempt follows a change of the webhook's URL)."
        )
    )
    action: LogAction = Field(
        description="Resource action, either `added`, `removed` or `changed`; `test` for a test notification."
    )
    resource_id: str = Field(description="The ID of the resource.")
    channel: str = Field(description="Channel that has been about the resource action.")
    status: LogStatus = Field(
        description="Status of the webhook request, either `pending`, `started`, `successful` or `failed`."
    )
    retry_index: int = Field(description="How many times the request has been retried.")
    reason: str | None = Field(description="The reason for failure if status is `failed`, otherwise null.")
    response_status_code: int | None = Field(
        description="Status code of a completed request, null if in progress."
    )
    response_body: str | None = Field(
        description="Response body of a completed request, null if in progress."
    )
    response_headers: dict[str, str] | None = Field(
        description=("Key-value map containing response headers of a completed request, null if in progress.")
    )
    duration: int | None = Field(
        description="How many milliseconds lasted to get a response for the request, null if in progress."
    )
    started_at: UTCDateTime | None = Field(
        description=(
            "When the request was sent (`created_at` is when the attempt was scheduled); null while pending."
        )
    )
    completed_at: UTCDateTime | None = Field(description="When the request was completed.")
    next_attempt_at: UTCDateTime | None = Field(
        description="While `pending`: when the request is due to be sent; otherwise null."
    )
    request_headers: dict[str, str] | None = Field(
        description=(
            "The request's headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`, "
            "`content-type`, `user-agent`), null until sent."
        )
    )
    request_body: str | None = Field(
        description=(
            "The exact body sent, as text, with `app_user_auth.access_token` replaced by "
            "`[redacted]`; null until sent, and for a trigger (a GET)."
        )
    )


def webhook_json(row: Any) -> dict[str, Any]:
    """`Webhook` of a row of `repository.WEBHOOKS_PAGE` (tests/api/test_fast_views.py)."""
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
        **{name: row[name] for name in HEALTH_FIELDS},
        "delivery_stats": orjson.loads(row["delivery_stats"]),
    }


def log_entry_json(row: Any) -> dict[str, Any]:
    """`WebhookLogEntry` of a row of `repository.LOG_ENTRIES_PAGE` (tests/api/test_fast_views.py)."""
    view = dict(row)
    view.pop("_other_side", None)  # the keyset probe of a cursor page (kit/pagination.py)
    for name in ("response_headers", "request_headers"):
        headers = view[name]
        view[name] = None if headers is None else orjson.loads(headers)
    return view


class WebhookTestRequest(InputSchema):
    """Body of sending a test notification: a channel's example instead of the `test` event."""

    model_config = request_body(
        example={"channel": "/api/v5/orgs/{organization_id}/users", "action": "added"}
    )

    channel: Annotated[str, Field(max_length=MAX_PATTERN_LENGTH)] = Field(
        description="A pattern of the channel catalogue (`GET /api/v5/webhook_channels`)."
    )
    action: LogAction | None = Field(None, description="One of the channel's actions; left out: its first.")
