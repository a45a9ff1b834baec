"""Run the alembic migrations programmatically (`apps-api migrate`, tests, embedded serve)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    ini = os.environ.get("APPS_API_ALEMBIC_INI")
    candidates = (
        [Path(ini)] if ini else [Path(__file__).resolve().parents[2] / "alembic.ini", Path("alembic.ini")]
    )
    for candidate in candidates:
        if candidate.is_file():
            config = Config(str(candidate))
            config.attributes["database_url"] = database_url
            return config
    raise RuntimeError("alembic.ini not found; set APPS_API_ALEMBIC_INI")


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
