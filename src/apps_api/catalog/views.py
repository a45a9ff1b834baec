"""The app views every domain embeds: the base view, the installed view and the user embed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from apps_api.kit.schemas import (
    AssetEmbed,
    OrganizationEmbed,
    Schema,
    UserEmbed,
    UTCDateTime,
    items_one_of,
)
from apps_api.models import SCOPES, TRIGGER_CONDITIONS, User


def _user_embed(value: Any) -> Any:
    """Users embed as docs/design.md section 3's user object (the model names the avatar `avatar_url`)."""
    return UserEmbed.of(value) if isinstance(value, User) else value


EmbeddedUser = Annotated[UserEmbed, BeforeValidator(_user_embed)]


# The values of these lists are closed sets (checked on input).
TriggerConditionList = Annotated[list[str], items_one_of(TRIGGER_CONDITIONS)]
ScopeList = Annotated[list[str], items_one_of(SCOPES)]

# Attribute descriptions in the spec's words, shared by every view that has the attribute.
REQUIRED_SCOPES = (
    "List of permission scopes the app requires in order to work. The permissions are needed for "
    "listening webhooks and for bot user permissions."
)
TRIGGER_CONDITIONS_DESCRIPTION = "List of trigger conditions in string format, sorted alphabetically."


class AppBase(Schema):
    id: uuid.UUID = Field(description="The ID of the app.")
    name: str = Field(description="Name of the app.")
    description: str = Field(description="Description for the app.")
    owned_by_organization_id: uuid.UUID = Field(
        description="The ID of the organization that the app belongs to."
    )
    owned_by_organization: OrganizationEmbed = Field(
        description="The organization resource to which the app belongs to."
    )
    icon_asset_id: uuid.UUID | None = Field(description="The ID of the icon asset that the app is using.")
    icon_asset: AssetEmbed | None = Field(description="The icon asset resource that the app is using.")
    is_app_user_required: bool = Field(
        description=(
            "Whether the app requires a bot user for the installing organization. This is done "
            "automatically when the app is installed."
        )
    )
    installation_count: int = Field(description="How many installations of this app there are.")
    created_at: UTCDateTime = Field(description="When the app was created.")
    updated_at: UTCDateTime = Field(description="When the app was updated.")


class InstalledApp(AppBase):
    """An app installed in the caller's organization."""

    trigger_conditions: TriggerConditionList = Field(description=TRIGGER_CONDITIONS_DESCRIPTION)


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
