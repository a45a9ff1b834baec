"""Base schemas and the embedded objects every view shares (DESIGN.md section 3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from apps_api.models import Organization, User


def _iso_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


UTCDateTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class InputSchema(BaseModel):
    """Request bodies: unknown and read-only attributes are ignored (a client may PUT back a GET)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


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
