"""Webhook, channel subscription and log entry views, and the event ingestion payload."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, Field, StrictBool, field_validator

from apps_api.catalog.views import AppBase, EmbeddedUser, app_base_json
from apps_api.delivery.matching import (
    APP_ORGANIZATION_ID,
    INSTALLATIONS_PATTERN,
    MAX_PATTERN_LENGTH,
    ORG_PREFIX,
    PLACEHOLDERS,
    USER_PREFIX,
    pattern_error,
)
from apps_api.kit.schemas import (
    URL_NO_FRAGMENT_PATTERN,
    InputDateTime,
    InputSchema,
    OrganizationEmbed,
    Schema,
    UTCDateTime,
    hint,
    request_body,
    resource_view,
    user_embed_json,
)
from apps_api.outbound.urls import unsendable_reason

MAX_SUBSCRIPTIONS = 100
MAX_URL_LENGTH = 2000
MAX_INGEST_BATCH = 500
# The wire values of `AttemptStatus` (tests/test_endpoint_care.py checks they agree).
LogStatus = Literal["pending", "started", "successful", "failed"]
Action = Literal["added", "changed", "removed"]
LogAction = Literal["added", "changed", "removed", "test"]
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


def _channel_pattern_regex() -> str:
    """`pattern_error()`'s rules as one regular expression, for the OpenAPI document."""

    def literal(text: str) -> str:
        return text.replace("{", r"\{").replace("}", r"\}")

    segment = "|".join([r"[A-Za-z0-9._~\-]+", r"\*", *(literal(p) for p in PLACEHOLDERS)])
    prefixes = "|".join(literal(prefix.rstrip("/")) for prefix in (ORG_PREFIX, USER_PREFIX))
    return f"^({literal(INSTALLATIONS_PATTERN)}|({prefixes})(/({segment}))+)$"


EndpointUrl = Annotated[
    str,
    AfterValidator(_endpoint_url),
    hint(format="uri", maxLength=MAX_URL_LENGTH, pattern=URL_NO_FRAGMENT_PATTERN),
]
ChannelPattern = Annotated[
    str,
    AfterValidator(_channel_pattern),
    hint(maxLength=MAX_PATTERN_LENGTH, pattern=_channel_pattern_regex()),
]

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
        **{name: row[name] for name in HEALTH_FIELDS},
        "delivery_stats": orjson.loads(row["delivery_stats"]),
    }


def log_entry_json(row: Any) -> dict[str, Any]:
    """`WebhookLogEntry` of a row of `repository.LOG_ENTRIES_PAGE` (tests/test_fast_views.py)."""
    view = dict(row)
    view.pop("_other_side", None)  # the keyset probe of a cursor page (kit/pagination.py)
    for name in ("response_headers", "request_headers"):
        headers = view[name]
        view[name] = None if headers is None else orjson.loads(headers)
    return view


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


class WebhookTestRequest(InputSchema):
    """Body of sending a test notification: a channel's example instead of the `test` event."""

    model_config = request_body(
        example={"channel": "/api/v5/orgs/{organization_id}/users", "action": "added"}
    )

    channel: Annotated[str, Field(max_length=MAX_PATTERN_LENGTH)] = Field(
        description="A pattern of the channel catalogue (`GET /api/v5/webhook_channels`)."
    )
    action: LogAction | None = Field(None, description="One of the channel's actions; left out: its first.")
