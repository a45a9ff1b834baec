"""`apps-api serve` (the API, and embedded: PostgreSQL, Redis and the worker) and `apps-api worker`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apps_api.cli.common import CommandError, prepare
from apps_api.embedded import EmbeddedServices, mark_serving
from apps_api.settings import Settings

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger("apps_api.cli")


@dataclass
class _Started:
    """What `serve` started, for its clean-up: each is None until started."""

    services: EmbeddedServices | None = None
    worker: subprocess.Popen[bytes] | None = None
    pid_file: Path | None = None

    def stop(self) -> None:
        """Stop what was started, the serving mark first."""
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        _stop_worker(self.worker)
        if self.services is not None:
            self.services.stop()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api import serving

    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    embedded = settings.database_url is None or settings.redis_url is None
    started = _Started()
    # A stop signal during start-up unwinds through the `finally` below like one while serving.
    with serving.stop_signals_raise():
        try:
            started.services = prepare(settings)
            _export_servers(settings)
            if embedded and not args.no_worker:
                started.worker = _start_worker()
            config = _uvicorn_config(args)
            if embedded:
                started.pid_file = mark_serving(settings.state_dir)
            _run_server(config, args)
        except (serving.GracefulStop, KeyboardInterrupt):
            pass
        finally:
            serving.ignore_stop_signals()
            started.stop()
    return 0


def _export_servers(settings: Settings) -> None:
    """The resolved servers and keys in the environment, for the processes `serve` starts."""
    # uvicorn worker processes are spawned: they read the resolved servers (embedded ones
    # included: PostgreSQL and Redis take connections from any process) from the environment.
    os.environ["APPS_API_DATABASE_URL"] = settings.database_url or ""
    os.environ["APPS_API_REDIS_URL"] = settings.redis_url or ""
    os.environ["APPS_API_SECRET_KEY"] = settings.secret_key
    os.environ["APPS_API_ENCRYPTION_KEYS"] = settings.encryption_keys or ""


def _start_worker() -> subprocess.Popen[bytes]:
    """The embedded arq worker, as a child process."""
    worker = subprocess.Popen([sys.executable, "-m", "apps_api", "worker"], env=dict(os.environ))
    logger.info("arq worker started (pid %s)", worker.pid)
    return worker


def _uvicorn_config(args: argparse.Namespace) -> uvicorn.Config:
    import uvicorn

    from apps_api import serving

    return uvicorn.Config(
        serving.APP_FACTORY,
        factory=True,
        loop=serving.LOOP_FACTORY,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=True,
        # apps_api.access logs each request once, with its route and request id.
        access_log=False,
    )


def _run_server(config: uvicorn.Config, args: argparse.Namespace) -> None:
    """One server process, or a supervisor of `--workers` processes sharing the port."""
    from apps_api import serving

    def announce() -> None:
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
        base = f"http://{shown}:{args.port}"
        logger.info(
            "serving on %s, %d process(es): docs at %s/docs, console at %s/console/",
            base,
            args.workers,
            base,
            base,
        )

    if args.workers > 1:
        sockets = [config.bind_socket()]
        # The port is bound here; the worker processes accept on it.
        announce()
        serving.Supervisor(config, sockets=sockets).run()
    else:
        # Logged by the server once it listens (after the app's start-up).
        serving.Server(config, on_listening=announce).run()


def _stop_worker(worker: subprocess.Popen[bytes] | None) -> None:
    if worker is None or worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        # The worker lets attempts in flight finish for up to the webhook timeout + 5 s.
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (uvicorn[standard] brings it), as `serve` gets from uvicorn.

    Its socket transports are native code, where asyncio's pure-Python transport writes were a
    large share of the worker's CPU (figures in bench/ANALYSIS.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from apps_api.kit import arq_adapter
    from apps_api.worker import create_worker

    services = prepare(settings)
    try:
        asyncio.set_event_loop(_new_event_loop())
        arq_adapter.run(create_worker(settings))
    finally:
        services.stop()
    return 0
