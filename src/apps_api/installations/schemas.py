"""Views of an app installation: the installing organization's and the app owner's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field

from apps_api.catalog.views import EmbeddedUser, InstalledApp, ScopeList, app_base_json
from apps_api.kit.schemas import (
    NOT_BLANK,
    InputSchema,
    OrganizationEmbed,
    Schema,
    UTCDateTime,
    hint,
    items_one_of,
    request_body,
    user_embed_json,
)
from apps_api.models import SCOPES

# The prefixes of `repository.INSTALLATION_VIEW_COLUMNS` (schemas may not import the repository:
# it imports the service, which imports these schemas).
APP_PREFIX = "app__"
USER_PREFIX = "user_"

_ALLOWED_SCOPES = (
    "Which permissions have been accepted for the app. This maps to app required_scopes "
    "(see permission scopes)."
)


class AppInstallationBase(Schema):
    id: uuid.UUID = Field(description="The ID of the app installation.")
    organization_id: uuid.UUID = Field(description="The ID of the organization that has installed the app.")
    organization: OrganizationEmbed = Field(description="The organization resource that installed the app.")
    app_id: uuid.UUID = Field(description="The ID of the installed app.")
    app: InstalledApp = Field(description="The installed app resource.")
    app_user_id: uuid.UUID | None = Field(description="The ID of the app user; null if the app has none.")
    app_user: EmbeddedUser | None = Field(description="The app user resource; null if the app has none.")
    allowed_scopes: ScopeList = Field(description=_ALLOWED_SCOPES)
    created_at: UTCDateTime = Field(description="When the app installation was created.")
    updated_at: UTCDateTime = Field(description="When the app installation was updated.")


class AppInstallation(AppInstallationBase):
    """An app installed in the caller's organization."""


class OwnedAppInstallation(AppInstallationBase):
    """An installation of an app the caller's organization owns, in any organization."""


# Names refused when blank (by the service, with the app's defaults in view).
_PersonName = Annotated[str, Field(max_length=150), hint(minLength=1, pattern=NOT_BLANK)]


class AppUserInput(InputSchema):
    """Names of the app user created with the installation; null or left out: the app's default."""

    first_name: _PersonName | None = Field(default=None, description="First name of the app user.")
    last_name: _PersonName | None = Field(default=None, description="Last name of the app user.")
    alias: _PersonName | None = Field(default=None, description="Alias of the app user.")


class AppInstallationInput(InputSchema):
    """Body of installing an app in the caller's organization."""

    model_config = request_body(
        example={
            "app_id": "3c1e5a7b-9d2f-4b6c-8e0a-1f3b5d7c9e2a",
            "allowed_scopes": ["reports"],
            "app_user": {"first_name": "Weather", "last_name": "Bot"},
        }
    )

    app_id: uuid.UUID = Field(description="The ID of the app to install.")
    allowed_scopes: Annotated[list[str], items_one_of(SCOPES)] | None = Field(
        default=None,
        description=(
            "The permission scopes granted to the app; they must include the app's required_scopes. "
            "Null or left out: the app's required_scopes."
        ),
    )
    app_user: AppUserInput | None = Field(
        default=None,
        description="Names of the app user, overriding the app's defaults (apps that require an app user).",
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
    `app_base_json()` (tests/api/test_fast_views.py compares the bytes with the retrieve route's).
    """
    installed_app = app_base_json(app)
    installed_app["installation_count"] = installation_count
    installed_app["trigger_conditions"] = app["trigger_conditions"]
    return _installation_view(values, installed_app, organization_name, app_user)


def installation_row_json(row: Any) -> dict[str, Any]:
    """`AppInstallation` (or `OwnedAppInstallation`) of a row of `repository.INSTALLATION_VIEW_COLUMNS`."""
    installed_app = app_base_json(row, APP_PREFIX)
    installed_app["trigger_conditions"] = row[APP_PREFIX + "trigger_conditions"]
    return _installation_view(row, installed_app, row["organization_name"], user_embed_json(row, USER_PREFIX))


def _installation_view(
    values: Any, installed_app: dict[str, Any], organization_name: str, app_user: dict[str, Any] | None
) -> dict[str, Any]:
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
