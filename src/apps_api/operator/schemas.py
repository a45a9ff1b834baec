"""Views and request bodies of the operator API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field, field_validator

from apps_api.kit.schemas import (
    NOT_BLANK,
    AssetEmbed,
    InputDateTime,
    InputSchema,
    Schema,
    UTCDateTime,
    hint,
    items_one_of,
    request_body,
    resource_view,
)
from apps_api.models import FEATURES, PERMISSIONS
from apps_api.models.organization import subscription_is_active
from apps_api.platform.service import EXTERNAL_ID_MAX_LENGTH

ExternalId = Annotated[
    str, hint(pattern=r"^(?!id:)[^/\s](?:[^/]*[^/\s])?$", maxLength=EXTERNAL_ID_MAX_LENGTH)
]
_EXTERNAL_ID = "The operator's own id (no `/`, not starting with `id:`); the key of PUT."
Features = Annotated[list[str], items_one_of(FEATURES)]
Permissions = Annotated[list[str], items_one_of(PERMISSIONS)]


def _closed_set(values: list[str] | None, allowed: tuple[str, ...]) -> list[str] | None:
    if values is None:
        return None
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown: {', '.join(unknown)}. Allowed: {', '.join(allowed)}.")
    return sorted(set(values))


# --- organizations ---------------------------------------------------------------------------


class Organization(Schema):
    """An organization as the operator sees it."""

    model_config = resource_view(editable=("name", "features", "subscription_ends_at", "external_id"))

    id: uuid.UUID = Field(description="The ID of the organization.")
    external_id: str | None = Field(description="The operator's own id of the organization, if given.")
    name: str = Field(description="Name of the organization.")
    features: Features = Field(
        description="`apps`: may install apps; `app_provider`: may offer its apps to partners or anyone."
    )
    subscription_ends_at: UTCDateTime | None = Field(
        description="When the subscription ends (every API call of its users is then a 403); null: never."
    )
    has_active_subscription: bool = Field(description="Whether the subscription is live now.")
    created_at: UTCDateTime = Field(description="When the organization was created.")
    updated_at: UTCDateTime = Field(description="When the organization was last changed.")

    @classmethod
    def of(cls, organization: Any) -> Organization:
        return cls(
            id=organization.id,
            external_id=organization.external_id,
            name=organization.name,
            features=sorted(organization.features),
            subscription_ends_at=organization.subscription_expires_at,
            has_active_subscription=organization.has_active_subscription(),
            created_at=organization.created_at,
            updated_at=organization.updated_at,
        )

    @classmethod
    def of_row(cls, row: Any) -> Organization:
        """`of` an organization's row (operator/queries.py's columns), as a GET reads it."""
        return cls(
            id=row["id"],
            external_id=row["external_id"],
            name=row["name"],
            features=sorted(row["features"]),
            subscription_ends_at=row["subscription_expires_at"],
            has_active_subscription=subscription_is_active(
                row["subscription_active"], row["subscription_expires_at"]
            ),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class _OrganizationFields(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=200, description="Name of the organization.")
    features: Features | None = Field(None, description="Every feature the organization has.")
    subscription_ends_at: InputDateTime | None = Field(
        None, description="When the subscription ends; null: never. ISO-8601; no offset means UTC."
    )

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str] | None) -> list[str] | None:
        return _closed_set(value, FEATURES)


class OrganizationCreate(_OrganizationFields):
    """Body of creating an organization."""

    model_config = request_body(
        example={"name": "Customer Co", "features": ["apps"], "external_id": "crm-1042"}, required=("name",)
    )

    name: str = Field(min_length=1, max_length=200, description="Name of the organization.")
    external_id: ExternalId | None = Field(None, description=_EXTERNAL_ID)


class OrganizationPut(_OrganizationFields):
    """The whole state of an organization: `name` and `features` required; without
    `subscription_ends_at` the subscription never ends."""

    model_config = request_body(
        example={"name": "Customer Co", "features": ["apps"], "subscription_ends_at": "2027-12-31T00:00:00Z"},
        required=("name", "features"),
        not_null=("name", "features"),
    )

    name: str = Field(min_length=1, max_length=200, description="Name of the organization.")
    features: Features = Field(description="Every feature the organization has (`[]`: none).")


class OrganizationPatch(_OrganizationFields):
    """The attributes to change; the others stay."""

    model_config = request_body(example={"features": ["apps", "app_provider"]}, not_null=("name", "features"))

    external_id: ExternalId | None = Field(None, description=_EXTERNAL_ID)


# --- users -----------------------------------------------------------------------------------


class User(Schema):
    """A user as the operator sees it (never its password)."""

    model_config = resource_view(editable=("external_id", "email", "first_name", "last_name", "permissions"))

    id: uuid.UUID = Field(description="The ID of the user.")
    external_id: str | None = Field(description="The operator's own id of the user, if given.")
    organization_id: uuid.UUID = Field(description="The ID of the user's organization.")
    email: str | None = Field(description="The email the user signs in with (console, install flow).")
    first_name: str | None = Field(description="First name of the user.")
    last_name: str | None = Field(description="Last name of the user.")
    permissions: Permissions = Field(
        description="`settings`: manage apps, installations and webhooks; `users`: read users; `reports`."
    )
    is_bot: bool = Field(description="Whether the user is an app user (a bot).")
    has_password: bool = Field(description="Whether the user can sign in with a password.")
    created_at: UTCDateTime = Field(description="When the user was created.")
    updated_at: UTCDateTime = Field(description="When the user was last changed.")

    @classmethod
    def of(cls, user: Any) -> User:
        return cls(
            id=user.id,
            external_id=user.external_id,
            organization_id=user.organization_id,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            permissions=sorted(user.permissions),
            is_bot=user.is_bot,
            has_password=user.password_hash is not None,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )

    @classmethod
    def of_row(cls, row: Any) -> User:
        """`of` a user's row (operator/queries.py's columns: `has_password`, never the hash)."""
        return cls(
            id=row["id"],
            external_id=row["external_id"],
            organization_id=row["organization_id"],
            email=row["email"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            permissions=sorted(row["permissions"]),
            is_bot=row["is_bot"],
            has_password=row["has_password"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class _UserFields(InputSchema):
    email: Annotated[str, hint(format="email", pattern=NOT_BLANK)] | None = Field(
        None, max_length=254, description="Sign-in email; unique among live users."
    )
    first_name: str | None = Field(None, max_length=150, description="First name of the user.")
    last_name: str | None = Field(None, max_length=150, description="Last name of the user.")
    permissions: Permissions | None = Field(None, description="Every permission the user has.")
    password: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        description="Sets the sign-in password (needs an email); the same password again changes nothing.",
    )

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: list[str] | None) -> list[str] | None:
        return _closed_set(value, PERMISSIONS)


class UserCreate(_UserFields):
    """Body of creating a user."""

    model_config = request_body(
        example={
            "external_id": "crm-user-7",
            "email": "ada@customer.example",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "permissions": ["settings"],
            "password": "a long passphrase",
        },
        required=(),
        not_null=("permissions", "password"),
    )

    external_id: ExternalId | None = Field(None, description=_EXTERNAL_ID)


class UserPut(_UserFields):
    """The whole state of a user: `permissions` required; other attributes left out are cleared,
    but a `password` left out stays as it is."""

    model_config = request_body(
        example={
            "email": "ada@customer.example",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "permissions": ["settings", "users"],
        },
        required=("permissions",),
        not_null=("permissions", "password"),
    )

    permissions: Permissions = Field(description="Every permission the user has (`[]`: none).")


class UserPatch(_UserFields):
    """The attributes to change; the others stay."""

    model_config = request_body(example={"permissions": ["settings"]}, not_null=("permissions", "password"))

    external_id: ExternalId | None = Field(None, description=_EXTERNAL_ID)


# --- tokens, partners, assets ------------------------------------------------------------------


class TokenCreate(InputSchema):
    """Body of minting an API token (none: a token that never expires)."""

    model_config = request_body(example={"expires_at": "2027-01-01T00:00:00Z"})

    expires_at: InputDateTime | None = Field(
        None, description="When the token stops working; null: never. ISO-8601; no offset means UTC."
    )


class Token(Schema):
    """An API token of a user (never its key)."""

    id: uuid.UUID = Field(description="The ID of the token.")
    user_id: uuid.UUID = Field(description="The user the token acts as.")
    key_prefix: str = Field(description="The key's first characters, to tell tokens apart.")
    created_at: UTCDateTime = Field(description="When the token was minted.")
    expires_at: UTCDateTime | None = Field(description="When the token stops working; null: never.")
    revoked_at: UTCDateTime | None = Field(description="When the token was revoked; null: live.")


class NewToken(Token):
    """A token just minted, with its key."""

    token: str = Field(
        description=(
            "The key, for `Authorization: Token <token>`. Shown only in this answer: only its digest is kept."
        )
    )


class AssetCreate(InputSchema):
    """Body of recording an icon asset (the file stays at its URL)."""

    model_config = request_body(
        example={
            "url": "https://cdn.example.com/icon.png",
            "content_type": "image/png",
            "width": 64,
            "height": 64,
        },
        required=("url",),
    )

    url: Annotated[str, hint(format="uri", pattern=r"^https?://")] = Field(
        max_length=2000, description="Absolute http(s) URL of the image."
    )
    content_type: str | None = Field(None, max_length=100, description="MIME type of the image.")
    # The columns' bounds (BIGINT, INTEGER): a larger number is the caller's 400, not the database's 500.
    size: int | None = Field(None, ge=0, le=2**63 - 1, description="Size in bytes.")
    width: int | None = Field(None, ge=1, le=2**31 - 1, description="Width in pixels.")
    height: int | None = Field(None, ge=1, le=2**31 - 1, description="Height in pixels.")


class Asset(AssetEmbed):
    """An asset an organization's apps may use as their icon (`icon_asset_id`)."""

    organization_id: uuid.UUID = Field(description="The organization the asset belongs to.")
    created_at: UTCDateTime = Field(description="When the asset was recorded.")
