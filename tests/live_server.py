"""Real processes on 127.0.0.1 for the reliability tests: a uvicorn API server, committed tenants.

The per-test rolled-back transaction of `client` lives on the pytest event loop; a server in
another process only sees committed rows, so these helpers commit data in organizations of
their own and delete them afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.kit.db import unit_of_work
from tests.factories import Tenant, make_tenant

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# A test-only factory: the real app plus one slow route, to prove graceful shutdown.
SLOW_APP_FACTORY = "tests.live_server:create_app_with_slow_route"


def create_app_with_slow_route() -> Any:
    import asyncio
    import logging

    from apps_api.main import create_app

    app = create_app()

    @app.get("/test-slow", include_in_schema=False)
    async def slow(seconds: float = 2.0) -> dict[str, str]:
        logging.getLogger("tests.slow").warning("slow request started")
        await asyncio.sleep(seconds)
        return {"slept": str(seconds)}

    return app


class ApiServer:
    """`uvicorn --factory <factory>` in a subprocess; stdout and stderr go to a log file."""

    def __init__(self, *, factory: str = "apps_api.main:create_app", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="apps-api-server-", suffix=".log", delete=False)  # noqa: SIM115
        launcher = (
            "import sys, uvicorn; from apps_api.logs import configure_logging; "
            "from apps_api.settings import get_settings; s = get_settings(); "
            "configure_logging(s.log_level, s.log_json); "
            "uvicorn.run(sys.argv[1], factory=True, host='127.0.0.1', port=int(sys.argv[2]), log_config=None)"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", launcher, factory, str(self.port)],
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"API server exited:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"API server did not start:\n{self.output()}")
            time.sleep(0.1)

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def stop(self) -> None:
        self.terminate()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@contextmanager
def api_server(*, factory: str = "apps_api.main:create_app", **env: str) -> Iterator[ApiServer]:
    server = ApiServer(factory=factory, **env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class Serve:
    """`apps-api serve --no-worker [args]` against the test database; output in a temporary file."""

    def __init__(self, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="apps-api-serve-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "apps_api", "serve", "--no-worker", "--port", str(self.port), *args],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            assert self.process.poll() is None, self.output()
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        from tests.webhook_helpers import eventually

        await eventually(ready, timeout=90, what="the API")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.unlink(missing_ok=True)


@contextmanager
def serve(*args: str, **env: str) -> Iterator[Serve]:
    server = Serve(*args, **env)
    try:
        yield server
    finally:
        server.stop()


async def committed_tenant(engine: AsyncEngine, name: str, **options: Any) -> Tenant:
    """A tenant committed to the database (visible to other processes); delete it afterwards."""
    async with AsyncSession(engine, expire_on_commit=False) as session, unit_of_work(session):
        options.setdefault("features", ["apps", "app_provider"])
        return await make_tenant(session, name=f"{name} {uuid.uuid4().hex[:6]}", **options)
