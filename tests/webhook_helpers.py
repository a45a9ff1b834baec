"""Real processes for the delivery tests: HTTP receivers on 127.0.0.1, arq workers, committed data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.models import Event, Organization, OutboundDelivery

ROOT = Path(__file__).resolve().parents[1]
# Fast retries, short timeouts and leases for tests (documented settings, see docs/configuration.md).
FAST_ENV = {
    "APPS_API_WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5",
    "APPS_API_WEBHOOK_SWEEP_INTERVAL_SECONDS": "1",
    "APPS_API_LOG_LEVEL": "INFO",
}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # block until the receiver is released (or closed)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A real HTTP server on 127.0.0.1 in a thread; `plan(n)` decides the reply to the n-th request."""

    def __init__(self, plan: Callable[[int], Reply] | None = None) -> None:
        self.plan = plan or (lambda _: Reply())
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_ids: dict[str, int] = {}
        self.max_concurrent_same_id = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The sender died mid-request (a SIGKILLed worker): no request was received.
                    self.close_connection = True
                    return
                message_id = self.headers.get("webhook-id", "")
                with receiver._lock:
                    index = len(receiver.requests)
                    receiver.requests.append(
                        Received(
                            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                        )
                    )
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                    receiver.in_flight_ids[message_id] = receiver.in_flight_ids.get(message_id, 0) + 1
                    receiver.max_concurrent_same_id = max(
                        receiver.max_concurrent_same_id, receiver.in_flight_ids[message_id]
                    )
                try:
                    reply = receiver.plan(index)
                    if reply.hang:
                        receiver.release.wait(120)
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1
                        receiver.in_flight_ids[message_id] -= 1

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receivers(*plans: Callable[[int], Reply] | None) -> Iterator[list[Receiver]]:
    started = [Receiver(plan) for plan in plans]
    try:
        yield started
    finally:
        for receiver in started:
            receiver.close()


class WorkerProcess:
    """`python -m apps_api worker` with the test environment (and overrides)."""

    def __init__(self, **env: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="apps-api-worker-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "apps_api", "worker"],
            env={**os.environ, **FAST_ENV, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "worker started" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{self.output()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@contextmanager
def worker(**env: str) -> Iterator[WorkerProcess]:
    process = WorkerProcess(**env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, timeout: float = 60, what: str = "condition"
) -> None:
    """Poll until `check` holds (a generous deadline only guards against hanging forever)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def quiescent(engine: AsyncEngine, organization_ids: list[uuid.UUID], app_ids: list[uuid.UUID]) -> bool:
    """Every event of these organizations dispatched and every delivery of these apps finished."""
    async with AsyncSession(engine) as session:
        undispatched = await session.scalar(
            select(Event.id)
            .where(Event.organization_id.in_(organization_ids), Event.dispatched_at.is_(None))
            .limit(1)
        )
        unfinished = await session.scalar(
            select(OutboundDelivery.id)
            .where(OutboundDelivery.app_id.in_(app_ids), OutboundDelivery.status.in_(("pending", "started")))
            .limit(1)
        )
    return undispatched is None and unfinished is None


async def cleanup(engine: AsyncEngine, organization_ids: list[uuid.UUID], app_ids: list[uuid.UUID]) -> None:
    """Delete committed test data (organizations cascade to users, apps, installations, webhooks)."""
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(delete(OutboundDelivery).where(OutboundDelivery.app_id.in_(app_ids)))
        await session.execute(delete(Event).where(Event.organization_id.in_(organization_ids)))
        await session.execute(delete(Organization).where(Organization.id.in_(organization_ids)))
