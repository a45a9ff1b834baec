"""Base schemas and the embedded objects every view shares (DESIGN.md section 3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, field_validator

if TYPE_CHECKING:  # the embeds read a model's attributes; kit imports no model at run time
    from apps_api.models import Organization, User


def iso_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


UTCDateTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class InputSchema(BaseModel):
    """Request bodies: unknown and read-only attributes are ignored (a client may PUT back a GET)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store U+0000 in text or jsonb: a 400 naming the field, not a 500.
        # After validation, nested InputSchemas are models (they check their own fields).
        if _contains_nul(value):
            raise ValueError("Must not contain the NUL character (U+0000).")
        return value


class OrganizationEmbed(Schema):
    id: uuid.UUID
    name: str

    @classmethod
    def of(cls, organization: Organization) -> OrganizationEmbed:
        return cls(id=organization.id, name=organization.name)


class UserEmbed(Schema):
    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    full_name: str
    alias: str | None
    organization_id: uuid.UUID
    is_bot: bool
    avatar: str | None

    @classmethod
    def of(cls, user: User) -> UserEmbed:
        return cls(
            id=user.id,
            first_name=user.first_name,
            last_name=user.last_name,
            full_name=user.full_name,
            alias=user.alias,
            organization_id=user.organization_id,
            is_bot=user.is_bot,
            avatar=user.avatar_url,
        )


class AssetEmbed(Schema):
    id: uuid.UUID
    url: str
    kind: str
    content_type: str | None
    size: int | None
    width: int | None
    height: int | None


def user_embed_json(row: Any, prefix: str) -> dict[str, Any] | None:
    """`UserEmbed` of the `<prefix>id`, `<prefix>first_name`, ... columns of a row (None without a user)."""
    user_id = row[prefix + "id"]
    if user_id is None:
        return None
    first_name, last_name = row[prefix + "first_name"], row[prefix + "last_name"]
    return {
        "id": user_id,
        "first_name": first_name,
        "last_name": last_name,
        # User.full_name, spelled out for a row.
        "full_name": " ".join(part for part in (first_name, last_name) if part),
        "alias": row[prefix + "alias"],
        "organization_id": row[prefix + "organization_id"],
        "is_bot": row[prefix + "is_bot"],
        "avatar": row[prefix + "avatar_url"],
    }
