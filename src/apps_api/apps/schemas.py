"""Read schemas, one per view of the App model; each exposes exactly the spec's attributes.

`secret` belongs to the owned view only (a test walks every other view to prove it).
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from apps_api.catalog.views import (
    REQUIRED_SCOPES,
    TRIGGER_CONDITIONS_DESCRIPTION,
    AppBase,
    EmbeddedUser,
    ScopeList,
    TriggerConditionList,
    app_base_json,
)
from apps_api.kit.crypto import decrypt
from apps_api.kit.schemas import (
    HTTP_URL_PATTERN,
    HTTPS_URL_PATTERN,
    NOT_BLANK,
    InputSchema,
    OrganizationEmbed,
    Schema,
    UTCDateTime,
    hint,
    items_one_of,
    request_body,
    resource_view,
    user_embed_json,
)
from apps_api.models import SCOPES, TRIGGER_CONDITIONS
from apps_api.outbound.urls import unsendable_reason

NAME_MAX_LENGTH = 75

# The owned view's attributes an owner may write (the others are read-only).
EDITABLE = (
    "name",
    "description",
    "icon_asset_id",
    "is_available_to_anyone",
    "is_available_to_partners",
    "is_app_user_required",
    "app_user_default_first_name",
    "app_user_default_last_name",
    "app_user_default_alias",
    "terms_of_service_url",
    "privacy_policy_url",
    "trigger_url",
    "trigger_conditions",
    "required_scopes",
    "allowed_redirect_uris",
)


class PublicApp(AppBase):
    """An approved app available to anyone (the spec's public app resource)."""

    required_scopes: ScopeList = Field(description=REQUIRED_SCOPES)


class PartnerApp(AppBase):
    """An app a partner organization makes available to the caller's organization."""

    required_scopes: ScopeList = Field(description=REQUIRED_SCOPES)


# Descriptions an owned app's attributes share between its view and its request bodies.
_DOC = {
    "name": "Name of the app.",
    "description": "Description for the app.",
    "icon_asset_id": "The ID of the icon asset that the app is using (an asset of the owner organization).",
    "is_available_to_anyone": (
        "Whether the application is public for all organizations in the giosg system. Can be set to true "
        'only if the organization has the "App provider" feature; the app is listed once approved.'
    ),
    "is_available_to_partners": (
        "Whether the application is public for your partner organizations. Can be set to true only if "
        'the organization has the "App provider" feature.'
    ),
    "is_app_user_required": (
        "Whether the app requires a bot user for the installing organization. This is done automatically "
        "when the app is installed."
    ),
    "app_user_default_first_name": (
        "Default first name for the bot user. This is required if is_app_user_required is set as true. "
        "This field is nullable but blank string is not allowed."
    ),
    "app_user_default_last_name": (
        "Default last name for the bot user. This is required if is_app_user_required is set as true. "
        "This field is nullable but blank string is not allowed."
    ),
    "app_user_default_alias": (
        "Default alias for the bot user. This field is nullable but blank string is not allowed."
    ),
    "terms_of_service_url": "URL for application's terms of service.",
    "privacy_policy_url": "URL for application's privacy policy.",
    "trigger_url": "URL which is used whenever one of the given trigger_conditions match.",
    "trigger_conditions": TRIGGER_CONDITIONS_DESCRIPTION,
    "required_scopes": REQUIRED_SCOPES,
    "allowed_redirect_uris": (
        "List of URLs where the app can redirect the app installer to. The URLs must start with https://."
    ),
}


class OwnedApp(AppBase):
    """An app the caller's organization owns: every attribute, the secret included."""

    model_config = resource_view(editable=EDITABLE)

    is_available_to_anyone: bool = Field(description=_DOC["is_available_to_anyone"])
    is_available_to_partners: bool = Field(description=_DOC["is_available_to_partners"])
    app_user_default_first_name: str | None = Field(description=_DOC["app_user_default_first_name"])
    app_user_default_last_name: str | None = Field(description=_DOC["app_user_default_last_name"])
    app_user_default_alias: str | None = Field(description=_DOC["app_user_default_alias"])
    terms_of_service_url: str = Field(description=_DOC["terms_of_service_url"])
    privacy_policy_url: str = Field(description=_DOC["privacy_policy_url"])
    trigger_url: str | None = Field(description=_DOC["trigger_url"])
    trigger_conditions: TriggerConditionList = Field(description=_DOC["trigger_conditions"])
    required_scopes: ScopeList = Field(description=_DOC["required_scopes"])
    allowed_redirect_uris: list[str] = Field(description=_DOC["allowed_redirect_uris"])
    created_by_user_id: uuid.UUID | None = Field(description="ID of the user who created this app.")
    created_by_user: EmbeddedUser | None = Field(description="The user resource created this app.")
    updated_by_user_id: uuid.UUID | None = Field(description="ID of the user who last updated this app.")
    updated_by_user: EmbeddedUser | None = Field(description="The user resource who last updated this app.")
    secret: str = Field(
        description=(
            "The secret key of the app: the client secret of `POST /identity/token` and the key that "
            "signs its webhooks and trigger data."
        )
    )


class AppShare(Schema):
    """An owner's grant letting one partner organization see and install the app."""

    id: uuid.UUID = Field(description="The ID of the app share.")
    app_id: uuid.UUID = Field(description="The ID of the shared app.")
    organization_id: uuid.UUID = Field(
        description="The ID of the partner organization the app is shared with."
    )
    organization: OrganizationEmbed = Field(description="The partner organization the app is shared with.")
    created_at: UTCDateTime = Field(description="When the app was shared.")


# --- rows of the compiled list queries (apps/repository.py) as JSON-ready views ---------------------
# Same keys, order and values as the models above produce (tests/api/test_fast_views.py checks it).


def public_app_json(row: Any) -> dict[str, Any]:
    """`PublicApp` of a row of `repository.PUBLIC_APPS_PAGE`."""
    view = app_base_json(row)
    view["required_scopes"] = row["required_scopes"]
    return view


def owned_app_json(row: Any) -> dict[str, Any]:
    """`OwnedApp` of a row of `repository.OWNED_APPS_PAGE` (the secret included: owners only)."""
    view = app_base_json(row)
    view.update(
        is_available_to_anyone=row["is_available_to_anyone"],
        is_available_to_partners=row["is_available_to_partners"],
        app_user_default_first_name=row["app_user_default_first_name"],
        app_user_default_last_name=row["app_user_default_last_name"],
        app_user_default_alias=row["app_user_default_alias"],
        terms_of_service_url=row["terms_of_service_url"],
        privacy_policy_url=row["privacy_policy_url"],
        trigger_url=row["trigger_url"],
        trigger_conditions=row["trigger_conditions"],
        required_scopes=row["required_scopes"],
        allowed_redirect_uris=row["allowed_redirect_uris"],
        created_by_user_id=row["created_by_user_id"],
        created_by_user=user_embed_json(row, "created_by_"),
        updated_by_user_id=row["updated_by_user_id"],
        updated_by_user=user_embed_json(row, "updated_by_"),
        secret=decrypt(row["secret"]),  # a raw row: the column's ciphertext
    )
    return view


def app_share_json(row: Any) -> dict[str, Any]:
    """`AppShare` of a row of `repository.APP_SHARES_PAGE`."""
    return {
        "id": row["id"],
        "app_id": row["app_id"],
        "organization_id": row["organization_id"],
        "organization": {"id": row["organization_id"], "name": row["organization_name"]},
        "created_at": row["created_at"],
    }


# --- input -----------------------------------------------------------------------------------

# Attributes an owner must give on create and PUT.
REQUIRED_ATTRIBUTES = (
    "name",
    "description",
    "is_app_user_required",
    "terms_of_service_url",
    "privacy_policy_url",
)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("This field may not be blank.")
    return value


def _name(value: str) -> str:
    value = _not_blank(value).strip()
    if len(value) > NAME_MAX_LENGTH:
        raise ValueError(f"Ensure this field has no more than {NAME_MAX_LENGTH} characters.")
    return value


def _unsafe_character(value: str) -> bool:
    """Whitespace or a control character: CR/LF in a URL could inject headers downstream."""
    return any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)  # note: urlsplit silently drops tabs and newlines, hence the check
    if parts.scheme not in ("http", "https") or not parts.hostname or _unsafe_character(value):
        raise ValueError("Enter a valid absolute http:// or https:// URL.")
    # The trigger sender's parser (httpx) has the last word: what it refuses would fail every attempt.
    reason = unsendable_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _https_url(value: str) -> str:
    value = _http_url(value)
    if urlsplit(value).scheme != "https":
        raise ValueError("The URL must start with https://.")
    return value


def _is_loopback_literal(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8 and ::1
    except ValueError:
        return False


def _trigger_url(value: str) -> str:
    """https only: trigger tokens travel in its query string. Plain http for a loopback host (development)."""
    value = _http_url(value)
    parts = urlsplit(value)
    if parts.scheme != "https" and not _is_loopback_literal(parts.hostname or ""):
        raise ValueError(
            "The URL must start with https:// (trigger tokens travel in its query string); "
            "http:// only for a loopback host (127.0.0.0/8, ::1, localhost)."
        )
    return value


def _choices(allowed: tuple[str, ...], what: str) -> Any:
    def check(values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"Unknown {what}: {', '.join(unknown)}. Allowed: {', '.join(allowed)}.")
        return sorted(set(values))

    return check


Name = Annotated[str, AfterValidator(_name), hint(minLength=1, maxLength=NAME_MAX_LENGTH, pattern=NOT_BLANK)]
Text = Annotated[str, AfterValidator(_not_blank), hint(minLength=1, pattern=NOT_BLANK)]
PersonName = Annotated[
    str, Field(max_length=150), AfterValidator(_not_blank), hint(minLength=1, pattern=NOT_BLANK)
]
HttpUrl = Annotated[
    str, Field(max_length=2000), AfterValidator(_http_url), hint(format="uri", pattern=HTTP_URL_PATTERN)
]
HttpsUrl = Annotated[
    str, Field(max_length=2000), AfterValidator(_https_url), hint(format="uri", pattern=HTTPS_URL_PATTERN)
]
TriggerUrl = Annotated[
    str, Field(max_length=2000), AfterValidator(_trigger_url), hint(format="uri", pattern=HTTP_URL_PATTERN)
]
# Lists are bounded so that absurd payloads are refused before every item is validated.
MAX_LIST_ITEMS = 100
TriggerConditions = Annotated[
    list[str],
    Field(max_length=MAX_LIST_ITEMS),
    AfterValidator(_choices(TRIGGER_CONDITIONS, "trigger condition")),
    items_one_of(TRIGGER_CONDITIONS),
]
Scopes = Annotated[
    list[str],
    Field(max_length=MAX_LIST_ITEMS),
    AfterValidator(_choices(SCOPES, "scope")),
    items_one_of(SCOPES),
]

_OWNED_APP_EXAMPLE = {
    "name": "Weather bot",
    "description": "Answers visitors' questions about the weather.",
    "is_app_user_required": True,
    "app_user_default_first_name": "Weather",
    "app_user_default_last_name": "Bot",
    "terms_of_service_url": "https://bot.example.com/terms",
    "privacy_policy_url": "https://bot.example.com/privacy",
    "trigger_url": "https://bot.example.com/trigger",
    "trigger_conditions": ["install", "uninstall"],
    "required_scopes": ["reports"],
    "allowed_redirect_uris": ["https://bot.example.com/installed"],
}


# One validation path for create, PUT and PATCH: the service tells the attributes the client
# sent from those it omitted, and demands REQUIRED_ATTRIBUTES on create and PUT (one 400 with
# every missing field). On create and PUT the defaults below are the values of the optional
# attributes left out (PUT replaces); PATCH ignores them. The documented schemas
# (request_body) carry no defaults and state what each operation requires.
class OwnedAppInput(InputSchema):
    """Body of creating (POST) or replacing (PUT) an owned app.

    The required attributes must be given. An optional attribute left out takes its default
    (false, an empty list or null), on create and on PUT alike: PUT replaces.
    """

    model_config = request_body(required=REQUIRED_ATTRIBUTES, example=_OWNED_APP_EXAMPLE)

    name: Name = Field("", description=_DOC["name"] + f" At most {NAME_MAX_LENGTH} characters.")
    description: Text = Field("", description=_DOC["description"])
    icon_asset_id: uuid.UUID | None = Field(None, description=_DOC["icon_asset_id"])
    is_available_to_anyone: bool = Field(False, description=_DOC["is_available_to_anyone"])
    is_available_to_partners: bool = Field(False, description=_DOC["is_available_to_partners"])
    is_available_to_network: bool = Field(
        default=False,
        description=(
            "Input alias of `is_available_to_partners` (the spec's 402 rule names it); never returned. "
            "Giving both with different values is a 400."
        ),
    )
    is_app_user_required: bool = Field(False, description=_DOC["is_app_user_required"])
    app_user_default_first_name: PersonName | None = Field(
        None, description=_DOC["app_user_default_first_name"]
    )
    app_user_default_last_name: PersonName | None = Field(
        None, description=_DOC["app_user_default_last_name"]
    )
    app_user_default_alias: PersonName | None = Field(None, description=_DOC["app_user_default_alias"])
    terms_of_service_url: HttpUrl = Field("", description=_DOC["terms_of_service_url"])
    privacy_policy_url: HttpUrl = Field("", description=_DOC["privacy_policy_url"])
    trigger_url: TriggerUrl | None = Field(None, description=_DOC["trigger_url"])
    trigger_conditions: TriggerConditions = Field(
        default_factory=list, description=_DOC["trigger_conditions"]
    )
    required_scopes: Scopes = Field(default_factory=list, description=_DOC["required_scopes"])
    allowed_redirect_uris: list[HttpsUrl] = Field(
        default_factory=list,
        max_length=MAX_LIST_ITEMS,
        description=_DOC["allowed_redirect_uris"],
    )


class OwnedAppPatch(OwnedAppInput):
    """Body of updating (PATCH) an owned app: only the attributes given change."""

    model_config = request_body(
        required=(), example={"description": "Answers visitors' questions about the weather, daily."}
    )


MAX_GRACE_PERIOD_SECONDS = 7 * 24 * 3600


class RotateSecretInput(InputSchema):
    """Body of rotating an owned app's secret (optional: the default grace period)."""

    model_config = request_body(example={"grace_period_seconds": 3600})

    grace_period_seconds: int = Field(
        default=86400,
        ge=0,
        le=MAX_GRACE_PERIOD_SECONDS,
        description=(
            "How long the previous secret keeps working (GIOSGAPP, `/identity/token`, and a second "
            "webhook signature), 0 to 604800 seconds; 0 ends it at once. Default: one day."
        ),
    )


class AppShareInput(InputSchema):
    """Body of sharing an owned app with a partner organization."""

    model_config = request_body(example={"organization_id": "0f5b3d2e-8c1a-4e6b-9d7f-2a4c6e8b0d13"})

    organization_id: uuid.UUID = Field(description="The partner organization to share the app with.")
