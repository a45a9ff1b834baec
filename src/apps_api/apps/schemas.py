"""Read schemas, one per view of the App model; each exposes exactly the spec's attributes.

`secret` belongs to the owned view only (a test walks every other view to prove it).
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from apps_api.catalog.views import AppBase, EmbeddedUser, app_base_json
from apps_api.kit.crypto import decrypt
from apps_api.kit.schemas import (
    InputSchema,
    OrganizationEmbed,
    Schema,
    UTCDateTime,
    user_embed_json,
)
from apps_api.models import SCOPES, TRIGGER_CONDITIONS
from apps_api.outbound.urls import unsendable_reason

NAME_MAX_LENGTH = 75


class PublicApp(AppBase):
    """An approved app available to anyone (the spec's public app resource)."""

    required_scopes: list[str]


class PartnerApp(AppBase):
    """An app a partner organization makes available to the caller's organization."""

    required_scopes: list[str]


class OwnedApp(AppBase):
    """An app the caller's organization owns: every attribute, the secret included."""

    is_available_to_anyone: bool
    is_available_to_partners: bool
    app_user_default_first_name: str | None
    app_user_default_last_name: str | None
    app_user_default_alias: str | None
    terms_of_service_url: str
    privacy_policy_url: str
    trigger_url: str | None
    trigger_conditions: list[str]
    required_scopes: list[str]
    allowed_redirect_uris: list[str]
    created_by_user_id: uuid.UUID | None
    created_by_user: EmbeddedUser | None
    updated_by_user_id: uuid.UUID | None
    updated_by_user: EmbeddedUser | None
    secret: str = Field(description="The app's secret: OAuth client secret and webhook signing key.")


class AppShare(Schema):
    """An owner's grant letting one partner organization see and install the app."""

    id: uuid.UUID
    app_id: uuid.UUID
    organization_id: uuid.UUID
    organization: OrganizationEmbed
    created_at: UTCDateTime


# --- rows of the compiled list queries (apps/repository.py) as JSON-ready views ---------------------
# Same keys, order and values as the models above produce (tests/test_fast_views.py checks it).


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


Name = Annotated[str, AfterValidator(_name)]
Text = Annotated[str, AfterValidator(_not_blank)]
PersonName = Annotated[str, Field(max_length=150), AfterValidator(_not_blank)]
HttpUrl = Annotated[str, Field(max_length=2000), AfterValidator(_http_url)]
HttpsUrl = Annotated[str, Field(max_length=2000), AfterValidator(_https_url)]
TriggerUrl = Annotated[str, Field(max_length=2000), AfterValidator(_trigger_url)]
# Lists are bounded so that absurd payloads are refused before every item is validated.
MAX_LIST_ITEMS = 100
TriggerConditions = Annotated[
    list[str],
    Field(max_length=MAX_LIST_ITEMS),
    AfterValidator(_choices(TRIGGER_CONDITIONS, "trigger condition")),
]
Scopes = Annotated[list[str], Field(max_length=MAX_LIST_ITEMS), AfterValidator(_choices(SCOPES, "scope"))]


class OwnedAppInput(InputSchema):
    """The editable attributes of an owned app. Only attributes present in the payload apply.

    Defaults here are placeholders: `model_fields_set` tells what the client sent; create and
    PUT demand `REQUIRED_ATTRIBUTES`, PATCH changes only what is given.
    """

    name: Name = ""
    description: Text = ""
    icon_asset_id: uuid.UUID | None = None
    is_available_to_anyone: bool = False
    is_available_to_partners: bool = False
    is_available_to_network: bool = Field(
        default=False,
        description=(
            "Input alias of `is_available_to_partners` (the spec's 402 rule names it); never returned. "
            "Giving both with different values is a 400."
        ),
    )
    is_app_user_required: bool = False
    app_user_default_first_name: PersonName | None = None
    app_user_default_last_name: PersonName | None = None
    app_user_default_alias: PersonName | None = None
    terms_of_service_url: HttpUrl = ""
    privacy_policy_url: HttpUrl = ""
    trigger_url: TriggerUrl | None = None
    trigger_conditions: TriggerConditions = Field(default_factory=list)
    required_scopes: Scopes = Field(default_factory=list)
    allowed_redirect_uris: list[HttpsUrl] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)


MAX_GRACE_PERIOD_SECONDS = 7 * 24 * 3600


class RotateSecretInput(InputSchema):
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
    organization_id: uuid.UUID = Field(description="The partner organization to share the app with.")
