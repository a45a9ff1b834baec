"""The application's settings, for routes and dependencies: the ones given to `create_app`
(`app.state.settings`), never a process-wide global, so tests and processes may differ."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps_api.settings import Settings


def app_settings(request: Request) -> Settings:
    """The settings of the application serving `request`."""
    settings: Settings = request.app.state.settings
    return settings


# async: FastAPI runs a plain `def` dependency in a worker thread (a thread hop per request).
async def _settings(request: Request) -> Settings:
    return app_settings(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
