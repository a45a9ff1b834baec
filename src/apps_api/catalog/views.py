"""The app views every domain embeds: the base view, the installed view and the user embed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BeforeValidator

from apps_api.kit.schemas import AssetEmbed, OrganizationEmbed, Schema, UserEmbed, UTCDateTime
from apps_api.models import User


def _user_embed(value: Any) -> Any:
    """Users embed as DESIGN.md section 3's user object (the model names the avatar `avatar_url`)."""
    return UserEmbed.of(value) if isinstance(value, User) else value


EmbeddedUser = Annotated[UserEmbed, BeforeValidator(_user_embed)]


class AppBase(Schema):
    id: uuid.UUID
    name: str
    description: str
    owned_by_organization_id: uuid.UUID
    owned_by_organization: OrganizationEmbed
    icon_asset_id: uuid.UUID | None
    icon_asset: AssetEmbed | None
    is_app_user_required: bool
    installation_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class InstalledApp(AppBase):
    """An app installed in the caller's organization."""

    trigger_conditions: list[str]


def app_base_json(row: Any, prefix: str = "") -> dict[str, Any]:
    """`AppBase` of a row of `repository.app_base_columns(prefix)`."""
    icon_id = row[prefix + "icon_asset_id"]
    owner_id = row[prefix + "owned_by_organization_id"]
    return {
        "id": row[prefix + "id"],
        "name": row[prefix + "name"],
        "description": row[prefix + "description"],
        "owned_by_organization_id": owner_id,
        "owned_by_organization": {"id": owner_id, "name": row[prefix + "owner_name"]},
        "icon_asset_id": icon_id,
        "icon_asset": None
        if icon_id is None
        else {
            "id": icon_id,
            "url": row[prefix + "icon_url"],
            "kind": row[prefix + "icon_kind"],
            "content_type": row[prefix + "icon_content_type"],
            "size": row[prefix + "icon_size"],
            "width": row[prefix + "icon_width"],
            "height": row[prefix + "icon_height"],
        },
        "is_app_user_required": row[prefix + "is_app_user_required"],
        "installation_count": row[prefix + "installation_count"],
        "created_at": row[prefix + "created_at"],
        "updated_at": row[prefix + "updated_at"],
    }


def installed_app_json(row: Any) -> dict[str, Any]:
    """`InstalledApp` of a row of `apps.repository.INSTALLED_APPS_PAGE`."""
    view = app_base_json(row)
    view["trigger_conditions"] = row["trigger_conditions"]
    return view
