"""Where the benchmark runs: its own database and Redis, and the processes it starts.

Database: `APPS_API_BENCH_DATABASE_URL` (e.g. `postgresql://postgres@127.0.0.1:5432/apps_api_bench`,
created when missing), else the embedded PostgreSQL of the state folder `.apps-api-bench`
(database `apps_api_bench`). Redis: `APPS_API_BENCH_REDIS_URL` (e.g. `redis://127.0.0.1:6379/15`),
else the embedded Redis of the same folder. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / ".apps-api-bench"
LOG_DIR = STATE_DIR / "logs"
DATABASE = "apps_api_bench"
QUEUE = "apps_api_bench:queue"
SECRET_KEY = "bench-secret-key-not-for-production"
ENCRYPTION_KEY = "YmVuY2gtZW5jcnlwdGlvbi1rZXktbm90LTQtcHJvZCE="  # 32 bytes, not for production
# Pagination links are absolute; both the service and the baseline build them from this origin,
# so their bodies can be compared byte for byte.
PUBLIC_BASE_URL = "http://api.bench.invalid"


@dataclass
class Services:
    database_url: str  # postgresql://... of the bench database
    redis_url: str
    handles: list[Any] = field(default_factory=list)
    description: str = ""

    def stop(self) -> None:
        for handle in reversed(self.handles):
            if isinstance(handle, subprocess.Popen):
                if handle.poll() is None:
                    handle.terminate()
                    handle.wait(10)
            else:
                handle._cleanup()

    @property
    def asyncpg_url(self) -> str:
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://")

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of the service processes (API, worker) under test."""
        return {
            **os.environ,
            "APPS_API_DATABASE_URL": self.database_url,
            "APPS_API_REDIS_URL": self.redis_url,
            "APPS_API_SECRET_KEY": SECRET_KEY,
            # App secrets at rest (kit/crypto.py); seeded rows hold plaintext, which reads as is.
            "APPS_API_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "APPS_API_QUEUE_NAME": QUEUE,
            "APPS_API_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "APPS_API_OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8",
            "APPS_API_INGEST_SERVICE_KEY": "bench-ingest-key",
            # The seeded log entries span six days; never let the hourly purge eat them mid-run.
            "APPS_API_WEBHOOK_LOG_RETENTION_DAYS": "36500",
            "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT),
            **extra,
        }


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _ensure_database(url: str) -> None:
    name = make_url(url).database
    admin = _with_database(url, "postgres")
    connection = await asyncpg.connect(admin)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def start_services() -> Services:
    """Resolve (or start) PostgreSQL and Redis, create and migrate the bench database."""
    from apps_api.embedded import start_postgres, start_redis
    from apps_api.migrate import upgrade

    handles: list[Any] = []
    configured = os.environ.get("APPS_API_BENCH_DATABASE_URL")
    if configured:
        database_url = configured
        where = "PostgreSQL at " + make_url(configured).render_as_string(hide_password=True).split("@")[-1]
    else:
        server, server_url = start_postgres(STATE_DIR / "postgres")
        handles.append(server)
        database_url = _with_database(server_url, DATABASE)
        where = f"embedded PostgreSQL in {STATE_DIR.name}/postgres"
    database_url = database_url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "postgres://", "postgresql://"
    )
    asyncio.run(_ensure_database(database_url))
    upgrade(database_url)
    redis_url = os.environ.get("APPS_API_BENCH_REDIS_URL")
    if redis_url:
        redis_where = "Redis at " + redis_url.split("@")[-1]
    else:
        process, redis_url = start_redis(STATE_DIR)
        if process is not None:
            handles.append(process)
        redis_where = f"embedded Redis in {STATE_DIR.name}"
    return Services(database_url, redis_url, handles, f"{where}; {redis_where}")


def scaled_services(services: Services, factor: int) -> Services:
    """The same servers with a second database, `<bench database>_x<factor>`, created and migrated.

    It holds `factor` times the data set (bench/seed.py), for the scale phase's second API.
    """
    from apps_api.migrate import upgrade

    name = make_url(services.database_url).database
    url = _with_database(services.database_url, f"{name}_x{factor}")
    asyncio.run(_ensure_database(url))
    upgrade(url)
    return Services(url, services.redis_url, [], services.description)


def flush_redis(url: str) -> None:
    """Empty the bench's Redis database: no job or lock of an earlier run is left for a worker."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process with its output in `LOG_DIR/<name>.log`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_http(url: str, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        process.check()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not answer on {url}:\n{process.output()[-3000:]}")
        time.sleep(0.1)


@contextmanager
def api_server(services: Services, name: str = "api", **env: str) -> Iterator[tuple[Process, str]]:
    """`apps-api serve` (one uvicorn process, no embedded worker) on a free loopback port."""
    port = free_port()
    process = Process(
        name,
        [
            sys.executable,
            "-m",
            "apps_api",
            "serve",
            "--no-worker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        # Pool sizing for 32 client connections: 20 connections kept open, like the baseline's
        # asyncpg pool (max_size=20). The default 10 + 10 overflow closes and reopens the overflow
        # connections under this load (5-8 % of the API's CPU). docs/operations.md.
        services.env(**{"APPS_API_DB_POOL_SIZE": "20", "APPS_API_DB_MAX_OVERFLOW": "0", **env}),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@contextmanager
def baseline_server(services: Services) -> Iterator[tuple[Process, str]]:
    """The minimal Starlette + asyncpg app of `bench/baseline/`, also one uvicorn process."""
    port = free_port()
    process = Process(
        "baseline",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        services.env(),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@contextmanager
def worker_process(services: Services, **env: str) -> Iterator[Process]:
    """`apps-api worker`: one arq worker process on the bench queue."""
    process = Process("worker", [sys.executable, "-m", "apps_api", "worker"], services.env(**env))
    try:
        deadline = time.monotonic() + 30
        while "worker started" not in process.output():
            process.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{process.output()[-3000:]}")
            time.sleep(0.05)
        yield process
    finally:
        process.stop()


@contextmanager
def receiver_process() -> Iterator[tuple[Process, str]]:
    """`bench/receiver.py`: the webhook receiver, a raw asyncio HTTP server in its own process."""
    port = free_port()
    process = Process(
        "receiver", [sys.executable, "-m", "bench.receiver", "--port", str(port)], {**os.environ}
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/stats", process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()
