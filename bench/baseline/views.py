"""The baseline's JSON views of its rows: the service's response bodies, field for field."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from bench.baseline import crypto


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


def app_base(row: asyncpg.Record, prefix: str = "") -> dict[str, Any]:
    icon_id, owner_id = row[f"{prefix}icon_asset_id"], row[f"{prefix}owned_by_organization_id"]
    icon = None
    if icon_id is not None:
        icon = {
            "id": icon_id,
            "url": row[f"{prefix}icon_url"],
            "kind": row[f"{prefix}icon_kind"],
            "content_type": row[f"{prefix}icon_content_type"],
            "size": row[f"{prefix}icon_size"],
            "width": row[f"{prefix}icon_width"],
            "height": row[f"{prefix}icon_height"],
        }
    return {
        "id": row[f"{prefix}id"],
        "name": row[f"{prefix}name"],
        "description": row[f"{prefix}description"],
        "owned_by_organization_id": owner_id,
        "owned_by_organization": {"id": owner_id, "name": row[f"{prefix}owner_name"]},
        "icon_asset_id": icon_id,
        "icon_asset": icon,
        "is_app_user_required": row[f"{prefix}is_app_user_required"],
        "installation_count": row[f"{prefix}installation_count"],
        "created_at": row[f"{prefix}created_at"],
        "updated_at": row[f"{prefix}updated_at"],
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
        "secret": crypto.decrypt(row["secret"]),
    }


def webhook(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "organization": {"id": row["organization_id"], "name": row["org_name"]},
        "app_id": row["app_id"],
        "app": app_base(row, "app_"),
        "endpoint_url": row["endpoint_url"],
        "channel_subscriptions": orjson.loads(row["channel_subscriptions"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "created_by_user_id": row["created_by_user_id"],
        "created_by_user": user(row, "cu", row["created_by_user_id"]),
        "updated_by_user_id": row["updated_by_user_id"],
        "updated_by_user": user(row, "uu", row["updated_by_user_id"]),
        "is_disabled": row["is_disabled"],
        "disabled_at": row["disabled_at"],
        "disabled_reason": row["disabled_reason"],
        "last_success_at": row["last_success_at"],
        "last_failure_at": row["last_failure_at"],
        "delivery_stats": orjson.loads(row["delivery_stats"]),
    }


def log_entry(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item.pop("_other_side", None)
    for name in ("response_headers", "request_headers"):  # selected as JSON text
        headers = item[name]
        item[name] = None if headers is None else orjson.loads(headers)
    return item
