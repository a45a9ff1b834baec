"""APPS_API_OPENTELEMETRY: FastAPI's native telemetry off by default, FastAPI's own defaults when on."""

from __future__ import annotations

from fastapi import FastAPI

from apps_api.main import create_app
from apps_api.settings import Settings


def test_off_by_default_fastapi_asks_for_no_provider_and_sets_up_no_exporter(settings: Settings) -> None:
    assert Settings.model_fields["opentelemetry"].default is False
    app = create_app(settings.model_copy(update={"opentelemetry": False}))
    config = app._telemetry
    assert (config["tracing"], config["metrics"], config["logs"], config["auto_configure"]) == (
        False,
        False,
        False,
        False,
    )
    assert app._native_telemetry.enabled() is False


def test_on_it_is_fastapis_own_configuration(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"opentelemetry": True}))
    assert app._telemetry == FastAPI()._telemetry
    assert app._telemetry["tracing"] is True
