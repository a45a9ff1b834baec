"""Views of an app installation: the installing organization's and the app owner's."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from apps_api.catalog.views import EmbeddedUser, InstalledApp, app_base_json
from apps_api.kit.schemas import InputSchema, OrganizationEmbed, Schema, UTCDateTime


class AppInstallationBase(Schema):
    id: uuid.UUID
    organization_id: uuid.UUID
    organization: OrganizationEmbed
    app_id: uuid.UUID
    app: InstalledApp
    app_user_id: uuid.UUID | None
    app_user: EmbeddedUser | None
    allowed_scopes: list[str]
    created_at: UTCDateTime
    updated_at: UTCDateTime


class AppInstallation(AppInstallationBase):
    """An app installed in the caller's organization."""


class OwnedAppInstallation(AppInstallationBase):
    """An installation of an app the caller's organization owns, in any organization."""


class AppUserInput(InputSchema):
    first_name: str | None = Field(default=None, max_length=150)
    last_name: str | None = Field(default=None, max_length=150)
    alias: str | None = Field(default=None, max_length=150)


class AppInstallationInput(InputSchema):
    app_id: uuid.UUID
    allowed_scopes: list[str] | None = Field(
        default=None, description="Scopes granted to the app; must cover its `required_scopes` (default)."
    )
    app_user: AppUserInput | None = Field(
        default=None, description="Names of the app user, overriding the app's defaults."
    )


def installation_json(
    *,
    values: dict[str, Any],
    app: Any,
    installation_count: int,
    organization_name: str,
    app_user: dict[str, Any] | None,
) -> dict[str, Any]:
    """`AppInstallation` of an installation's column values and its app's row (`repository.APP_ROW_COLUMNS`).

    Same keys, order and values as the model, datetimes left to `kit.views.dumps` as in
    `app_base_json()` (tests/test_fast_views.py compares the bytes with the retrieve route's).
    """
    installed_app = app_base_json(app)
    installed_app["installation_count"] = installation_count
    installed_app["trigger_conditions"] = app["trigger_conditions"]
    return {
        "id": values["id"],
        "organization_id": values["organization_id"],
        "organization": {"id": values["organization_id"], "name": organization_name},
        "app_id": values["app_id"],
        "app": installed_app,
        "app_user_id": values["app_user_id"],
        "app_user": app_user,
        "allowed_scopes": values["allowed_scopes"],
        "created_at": values["created_at"],
        "updated_at": values["updated_at"],
    }
