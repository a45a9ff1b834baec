"""Views of an app installation: the installing organization's and the app owner's."""

from __future__ import annotations

import uuid

from pydantic import Field

from apps_api.apps.schemas import EmbeddedUser, InstalledApp
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
