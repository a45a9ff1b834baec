"""A real PgBouncer (Debian's `pgbouncer` package) on a loopback port, in transaction pooling
mode, in front of the test PostgreSQL: generated configuration, a process of the test's own."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from apps_api.settings import to_asyncpg_url

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
MISSING = not Path(PGBOUNCER).exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def pgbouncer(server_url: str, *, pool_size: int = 20) -> Iterator[str]:
    """Start PgBouncer in front of `server_url`'s server; yields the same URL through it.

    Any database name is forwarded (`*`), as the server URL's user, with no client password
    (`auth_type = any`: loopback only, test servers trust).
    """
    url = make_url(to_asyncpg_url(server_url))
    socket_dir = url.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else (url.host or "127.0.0.1")
    port = _free_port()
    state = Path(tempfile.mkdtemp(prefix="apps-api-pgbouncer-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: run it as the owner of the server's socket folder
        # (the embedded server's user), else as nobody.
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else "nobody"
        run_as = ["-u", owner]
        state.chmod(0o777)
    config = state / "pgbouncer.ini"
    config.write_text(
        f"""[databases]
* = host={host} port={url.port or 5432} user={url.username or "postgres"}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
max_db_connections = {pool_size}
logfile = {state / "pgbouncer.log"}
pidfile = {state / "pgbouncer.pid"}
"""
    )
    config.chmod(0o644)
    process = subprocess.Popen(
        [PGBOUNCER, *run_as, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log = state / "pgbouncer.log"
                raise RuntimeError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("pgbouncer did not start")
            time.sleep(0.05)
        bounced = url.set(host="127.0.0.1", port=port, password=None, query={})
        yield bounced.render_as_string(hide_password=False).replace("postgresql+asyncpg://", "postgresql://")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(state, ignore_errors=True)
