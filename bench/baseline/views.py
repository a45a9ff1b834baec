"""The baseline's JSON views of its rows: the service's response bodies, field for field."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson


def user(row: asyncpg.Record, prefix: str, user_id: uuid.UUID | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    first, last = row[f"{prefix}_first_name"], row[f"{prefix}_last_name"]
    return {
        "id": user_id,
        "first_name": first,
        "last_name": last,
        "full_name": " ".join(part for part in (first, last) if part),
        "alias": row[f"{prefix}_alias"],
        "organization_id": row[f"{prefix}_org"],
        "is_bot": row[f"{prefix}_is_bot"],
        "avatar": row[f"{prefix}_avatar"],
    }


def app_base(row: asyncpg.Record) -> dict[str, Any]:
    icon = None
    if row["icon_asset_id"] is not None:
        icon = {
            "id": row["icon_asset_id"],
            "url": row["icon_url"],
            "kind": row["icon_kind"],
            "content_type": row["icon_content_type"],
            "size": row["icon_size"],
            "width": row["icon_width"],
            "height": row["icon_height"],
        }
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "owned_by_organization_id": row["owned_by_organization_id"],
        "owned_by_organization": {"id": row["owned_by_organization_id"], "name": row["owner_name"]},
        "icon_asset_id": row["icon_asset_id"],
        "icon_asset": icon,
        "is_app_user_required": row["is_app_user_required"],
        "installation_count": row["installation_count"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def public_app(row: asyncpg.Record) -> dict[str, Any]:
    return {**app_base(row), "required_scopes": row["required_scopes"]}


def installed_app(row: asyncpg.Record) -> dict[str, Any]:
    return {**app_base(row), "trigger_conditions": row["trigger_conditions"]}


def owned_app(row: asyncpg.Record) -> dict[str, Any]:
    return {
        **app_base(row),
        "is_available_to_anyone": row["is_available_to_anyone"],
        "is_available_to_partners": row["is_available_to_partners"],
        "app_user_default_first_name": row["app_user_default_first_name"],
        "app_user_default_last_name": row["app_user_default_last_name"],
        "app_user_default_alias": row["app_user_default_alias"],
        "terms_of_service_url": row["terms_of_service_url"],
        "privacy_policy_url": row["privacy_policy_url"],
        "trigger_url": row["trigger_url"],
        "trigger_conditions": row["trigger_conditions"],
        "required_scopes": row["required_scopes"],
        "allowed_redirect_uris": row["allowed_redirect_uris"],
        "created_by_user_id": row["created_by_user_id"],
        "created_by_user": user(row, "cu", row["created_by_user_id"]),
        "updated_by_user_id": row["updated_by_user_id"],
        "updated_by_user": user(row, "uu", row["updated_by_user_id"]),
        "secret": row["secret"],
    }


def log_entry(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item.pop("_other_side", None)
    headers = item["response_headers"]
    item["response_headers"] = orjson.loads(headers) if isinstance(headers, str) else headers
    return item
