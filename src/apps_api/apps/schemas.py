"""Read schemas, one per view of the App model; each exposes exactly the spec's attributes."""

from __future__ import annotations

import uuid

from apps_api.kit.schemas import AssetEmbed, OrganizationEmbed, Schema, UTCDateTime


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


class PublicApp(AppBase):
    """An approved app available to anyone (the spec's public app resource)."""

    required_scopes: list[str]


class PartnerApp(AppBase):
    """An app a partner organization makes available to the caller's organization."""

    required_scopes: list[str]


class InstalledApp(AppBase):
    """An app installed in the caller's organization."""

    trigger_conditions: list[str]
