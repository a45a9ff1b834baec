"""The states of deliveries and of their attempts, as the `status` values on the wire and in SQL."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """`outbound_deliveries.status`: waiting for an attempt, leased to a worker, or finished."""

    PENDING = "pending"
    STARTED = "started"
    SUCCESSFUL = "successful"
    FAILED = "failed"


class AttemptStatus(StrEnum):
    """`webhook_log_entries.status` (a log entry's `status` on the wire): one HTTP attempt."""

    PENDING = "pending"
    STARTED = "started"
    SUCCESSFUL = "successful"
    FAILED = "failed"


FINISHED = (DeliveryStatus.SUCCESSFUL, DeliveryStatus.FAILED)
