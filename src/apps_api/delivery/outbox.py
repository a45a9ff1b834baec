"""Delivery rows: the one pipeline behind webhook notifications and trigger requests."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.columns import ENTRY_COPIES
from apps_api.delivery.states import AttemptStatus, DeliveryStatus
from apps_api.kit.queue import enqueue, enqueue_after_commit
from apps_api.models import OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow

DELIVER_JOB = "deliver_outbound"


def new_message_id() -> str:
    """A Standard Webhooks message id (`webhook-id`), fixed for every attempt of a delivery."""
    return f"msg_{uuid.uuid4().hex}"


def endpoint_host(url: str) -> str:
    """scheme://host:port of a URL: the unit of the per-endpoint concurrency bound."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        hostname = (parts.hostname or "").lower()
    except ValueError:
        # A URL that cannot even be split (written before write-time checks, or by hand) still
        # gets a delivery row, whose attempts then fail with a reason: it must never stop dispatch.
        return f"invalid://{url[:200]}"[:300]
    return f"{scheme}://{hostname}:{port}"[:300]


def deliver_job_id(delivery_id: uuid.UUID, attempt_count: int) -> str:
    """One queued job per delivery and attempt; a sweeper re-enqueue of the same attempt is a no-op."""
    return f"deliver:{delivery_id}:{attempt_count}"


async def enqueue_deliver_job(
    pool: ArqRedis | None, delivery_id: uuid.UUID, attempt_count: int, **options: Any
) -> None:
    """Enqueue the job that sends the due attempts of the delivery's endpoint (`deliver_job_id`)."""
    await enqueue(
        pool, DELIVER_JOB, str(delivery_id), _job_id=deliver_job_id(delivery_id, attempt_count), **options
    )


async def enqueue_endpoint_job(pool: ArqRedis | None, host: str, *, reason: str) -> None:
    """Enqueue a job that sends the endpoint's due attempts (a new id each time: never a no-op)."""
    await enqueue(pool, DELIVER_JOB, None, host, _job_id=f"{reason}:{host}:{time.time()}")


def log_entry_fields(delivery: dict[str, Any], *, retry_index: int) -> dict[str, Any]:
    """Column values of a new `pending` log entry for the delivery's attempt `retry_index`."""
    return {
        "id": uuid.uuid4(),
        "delivery_id": delivery["id"],
        "app_id": delivery["app_id"],
        "organization_id": delivery["organization_id"],
        "webhook_id": delivery.get("webhook_id"),
        "endpoint_url": delivery["endpoint_url"],
        "action": delivery["action"],
        "resource_id": delivery["resource_id"],
        "channel": delivery["channel"],
        "status": AttemptStatus.PENDING,
        "retry_index": retry_index,
        "scheduled_at": delivery["next_attempt_at"],
    }


def new_log_entry(delivery: OutboundDelivery, *, retry_index: int) -> WebhookLogEntry:
    """The pending log entry of the delivery's next attempt."""
    return WebhookLogEntry(**log_entry_fields(delivery_fields(delivery), retry_index=retry_index))


def delivery_fields(delivery: Any) -> dict[str, Any]:
    """What a log entry copies of a delivery (an ORM row or a leased attempt), by column name."""
    return {key: getattr(delivery, key) for key in _DELIVERY_KEYS_OF_ENTRIES}


_DELIVERY_KEYS_OF_ENTRIES = ("id", *ENTRY_COPIES, "next_attempt_at")


def delivery_rows(**fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column values of a pending delivery due now and of its first attempt's log entry.

    The dispatcher inserts these as plain rows (no ORM objects: a fan-out creates thousands).
    """
    now = utcnow()
    delivery: dict[str, Any] = {
        "id": uuid.uuid4(),
        "message_id": new_message_id(),
        "endpoint_host": endpoint_host(fields["endpoint_url"]),
        "status": DeliveryStatus.PENDING,
        "attempt_count": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    entry = log_entry_fields(delivery, retry_index=0)
    entry["created_at"] = entry["updated_at"] = now
    delivery["current_log_entry_id"] = entry["id"]
    return delivery, entry


def build_delivery(**fields: Any) -> tuple[OutboundDelivery, WebhookLogEntry]:
    """A pending delivery due now and the log entry of its first attempt, as ORM objects."""
    delivery, entry = delivery_rows(**fields)
    return OutboundDelivery(**delivery), WebhookLogEntry(**entry)


async def schedule_delivery(
    *, session: AsyncSession, **fields: Any
) -> tuple[OutboundDelivery, WebhookLogEntry]:
    """Record a delivery in this transaction; a worker sends it once the transaction commits.

    Returns the delivery and the pending log entry of its first attempt.
    """
    delivery, entry = build_delivery(**fields)
    session.add(delivery)
    await session.flush()
    session.add(entry)
    await session.flush()
    enqueue_after_commit(session, DELIVER_JOB, str(delivery.id), _job_id=deliver_job_id(delivery.id, 0))
    return delivery, entry
