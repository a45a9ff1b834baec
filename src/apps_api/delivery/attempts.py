"""One leased attempt of a delivery, and the worker's delivery machinery that leases, sends and records it."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.outbound.client import OutboundClient, guarded_client
from apps_api.outbound.guard import parse_networks
from apps_api.settings import Settings

INTERRUPTED = "Interrupted: the worker stopped during the attempt; its lease lapsed."
INTERRUPTED_LAST = INTERRUPTED + " It was the last attempt: the delivery failed."


@dataclass
class Deliverer:
    """A worker's delivery machinery: database, settings, HTTP client and identity."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    client: OutboundClient
    worker_id: str
    # Where `engine.settle()` runs its fixed statements: an engine that plans them once per connection
    # (kit/db.create_engine's `generic_plans`, the worker's); the sessionmaker's when not given.
    settle_engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        bind: AsyncEngine = self.sessionmaker.kw["bind"]
        return bind

    @property
    def lease_seconds(self) -> float:
        # A lease always outlives the request's own deadline.
        return max(self.settings.webhook_lease_seconds, self.settings.webhook_timeout + 5)


def open_deliverer(
    *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], settle_engine: AsyncEngine
) -> Deliverer:
    """A worker process's machinery: its guarded HTTP client and an id no other process shares."""
    return Deliverer(
        sessionmaker=sessionmaker,
        settings=settings,
        client=guarded_client(
            parse_networks(settings.outbound_allow_networks),
            connect_timeout=settings.webhook_connect_timeout,
            total_timeout=settings.webhook_timeout,
        ),
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        settle_engine=settle_engine,
    )


@dataclass
class Attempt:
    """One leased attempt: the delivery's row as leased, its log entry, and what signing needs."""

    id: uuid.UUID
    kind: str
    app_id: uuid.UUID
    organization_id: uuid.UUID
    webhook_id: uuid.UUID | None
    installation_id: uuid.UUID | None
    target_organization_id: uuid.UUID | None
    app_user_id: uuid.UUID | None
    method: str
    endpoint_url: str
    endpoint_host: str
    channel: str
    action: str
    resource_id: str
    payload: dict[str, Any]
    signing_secret: str | None
    message_id: str
    attempt_count: int
    max_attempts: int
    next_attempt_at: datetime
    created_at: datetime
    log_entry_id: uuid.UUID | None
    # Joined at lease time: the app's current secret (None once the app is deleted) and
    # whether the installation still exists (its app user may act only while it does).
    app_secret: str | None
    # The secret a rotation replaced, while its grace period lasts: a second signature.
    app_previous_secret: str | None
    installed: bool
    # What the attempt sent, for its log entry (set when it is sent).
    request_headers: dict[str, str] | None = None
    request_body: str | None = None
