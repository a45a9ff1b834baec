"""`apps-api serve`: uvicorn in this process or in N worker processes, stopped by any of
SIGTERM, SIGINT and SIGHUP after the graceful drain, so the caller's clean-up always runs.

uvicorn re-raises the signal that stopped it once it has shut down: the default action of
SIGTERM and SIGHUP then kills the process before `serve` could stop the worker, Redis and
PostgreSQL it started. These subclasses keep the drain and drop the re-raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from apps_api.accepting import AcceptingLoop

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
APP_FACTORY = "apps_api.serving:served_app"
LOOP_FACTORY = "apps_api.accepting:new_event_loop"


class GracefulStop(BaseException):
    """Raised by a stop signal that arrives before uvicorn listens for it (start-up) or after."""


def _raise_stop(signum: int, _frame: Any) -> None:
    raise GracefulStop(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Until uvicorn handles them, a stop signal unwinds the stack (so `finally` blocks run)."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals() -> None:
    """While cleaning up: a second `kill` must not cut the clean-up short and orphan a child."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class Server(uvicorn.Server):
    """uvicorn's server, draining on SIGHUP too and returning (not re-raising) afterwards.

    `on_listening` runs once the socket listens, after the app's start-up (lifespan).
    """

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        accepting = isinstance(asyncio.get_running_loop(), AcceptingLoop)
        if sockets is None and self.config.ssl is None and accepting:
            # From a socket, uvicorn's server is the loop's AcceptingServer (apps_api.accepting).
            sockets = [self.config.bind_socket()]
        await super().startup(sockets=sockets)
        if self.started and self.on_listening is not None:
            self.on_listening()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Supervisor(Multiprocess):
    """uvicorn's process manager; SIGHUP stops (as for one process) instead of restarting."""

    def handle_hup(self) -> None:
        self.handle_term()


def served_app() -> Any:
    """The app of a uvicorn worker process (spawned: it configures its own logging)."""
    from apps_api.logs import configure_logging
    from apps_api.main import create_app
    from apps_api.settings import get_settings

    if multiprocessing.parent_process() is not None:
        # A worker of `serve --workers N`: the supervisor turns a SIGHUP (a closed terminal hits
        # the whole process group) into a SIGTERM for each worker, which drains.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
