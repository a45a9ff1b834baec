"""The deliveries page's filters: the query as typed (the form shows it back), its errors, and the
API's log entry filters (`GET .../webhook_log_entries`) it stands for."""

from __future__ import annotations

import re
import typing
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query

from apps_api.console.forms import utc_input
from apps_api.models.webhook_log_entry import LOG_STATUSES
from apps_api.webhooks import schemas as webhook_schemas

LOG_ACTIONS = typing.get_args(webhook_schemas.LogAction)
# A Standard Webhooks `webhook-id` as the service makes them (delivery/outbox.py).
MESSAGE_ID = re.compile(r"msg_[0-9a-f]{32}")


@dataclass(frozen=True)
class DeliveryFilters:
    typed: dict[str, str]
    errors: dict[str, list[str]]
    # The API's filters, None where not given (their presence is the compiled page's shape).
    values: dict[str, Any]


def _one_of(value: str | None, choices: tuple[str, ...]) -> list[str] | None:
    if value and value not in choices:
        return [f"Must be one of: {', '.join(choices)}."]
    return None


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID((value or "").strip())
    except ValueError:
        return None


def _time(value: str | None) -> tuple[datetime | None, list[str] | None]:
    try:
        return utc_input(value), None
    except ValueError:
        return None, ["Enter a date and time (YYYY-MM-DDTHH:MM, UTC)."]


def _search(q: str | None) -> tuple[str | None, str | None]:
    """`q` as (message id, resource id): a `webhook-id` (`msg_…`) finds a message, anything else is a
    resource ID."""
    search = (q or "").strip()
    if not search:
        return None, None
    return (search, None) if MESSAGE_ID.fullmatch(search) else (None, search)


def _api_filters(
    *,
    status: str | None,
    webhook_id: uuid.UUID | None,
    bounds: tuple[datetime | None, datetime | None],
    channel: str | None,
    action: str | None,
    q: str | None,
) -> dict[str, Any]:
    """The API's filters (None where not given), in the order of the API's own (`shape` keys a
    compiled statement: the same tuple must mean the same filters)."""
    message_id, resource_id = _search(q)
    return {
        "webhook_id": webhook_id,
        "status": status or None,
        "created_at_gte": bounds[0],
        "created_at_lte": bounds[1],
        "message_id": message_id,
        "resource_id": resource_id,
        "channel": (channel or "").strip() or None,
        "action": action or None,
    }


async def delivery_filters(
    status: Annotated[str | None, Query()] = None,
    webhook: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=500)] = None,
    action: Annotated[str | None, Query(max_length=16)] = None,
) -> DeliveryFilters:
    typed = {"status": status, "webhook": webhook, "since": since, "until": until, "q": q}
    typed |= {"channel": channel, "action": action}
    webhook_id = _uuid(webhook)
    created_at_gte, since_error = _time(since)
    created_at_lte, until_error = _time(until)
    errors = {
        "status": _one_of(status, LOG_STATUSES),
        "action": _one_of(action, LOG_ACTIONS),
        "webhook": ["Must be a webhook of this app."] if webhook and webhook_id is None else None,
        "since": since_error,
        "until": until_error,
    }
    bounds = (created_at_gte, created_at_lte)
    values = _api_filters(
        status=status, webhook_id=webhook_id, bounds=bounds, channel=channel, action=action, q=q
    )
    return DeliveryFilters(
        typed={name: value or "" for name, value in typed.items()},
        errors={name: messages for name, messages in errors.items() if messages},
        values=values,
    )


DeliveryFiltersDep = Annotated[DeliveryFilters, Depends(delivery_filters)]
