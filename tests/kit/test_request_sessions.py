"""kit/db.get_session: one unit of work a request, ended before the response starts.

The session is entered on FastAPI's stack of function-scoped dependencies
(`kit.db.enter_until_response`), not as a generator dependency: these tests pin that every
dependency of a request gets the same session, that it commits before the response starts, and
that an error of any kind rolls it back, also before the response.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from apps_api.kit.db import unit_of_work
from apps_api.models import App
from tests.conftest import _nested_session
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.recording import recording_response_starts

ORGS = "/api/v5/orgs"
BODY = {
    "name": "Sessions",
    "description": "One unit of work a request.",
    "is_app_user_required": False,
    "terms_of_service_url": "https://apps.example.com/terms",
    "privacy_policy_url": "https://apps.example.com/privacy",
}


def _recording(app: Any, connection: AsyncConnection, events: list[str]) -> Any:
    """The app with its sessions (opened, committed or rolled back) and response start in `events`."""

    @asynccontextmanager
    async def request_sessions(method: str) -> AsyncIterator[AsyncSession]:
        async with _nested_session(connection) as session:
            events.append("open")
            try:
                async with unit_of_work(session):
                    yield session
            except BaseException as exc:
                events.append(f"rollback {type(exc).__name__}")
                raise
            events.append("commit")

    app.state.request_sessions = request_sessions
    return recording_response_starts(app, events)


async def test_a_write_commits_or_rolls_back_its_one_session_before_its_response(
    app: Any, connection: AsyncConnection, session: AsyncSession, tenant: Tenant
) -> None:
    owned = await make_app(session, tenant.organization)
    events: list[str] = []
    transport = httpx.ASGITransport(app=_recording(app, connection, events))
    created = f"{ORGS}/{tenant.org_id}/owned_apps"
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        cases: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
            # A loader's 404 after the writer: the same session for both (opened once).
            ("PATCH", f"{created}/{uuid.uuid4()}", {"name": "x"}, 404, "rollback NotFound"),
            # The body's own 400: validated after the writer (and its session) were resolved.
            ("PATCH", f"{created}/{owned.id}", {"name": 5}, 400, "rollback RequestValidationError"),
            # The service's 400 (raised inside the unit of work).
            ("PATCH", f"{created}/{owned.id}", {"is_app_user_required": True}, 400, "rollback BadRequest"),
            ("PATCH", f"{created}/{owned.id}", {"name": "Renamed"}, 200, "commit"),
            ("DELETE", f"{created}/{owned.id}", None, 204, "commit"),
        ]
        for method, url, body, status, outcome in cases:
            events.clear()
            response = await client.request(method, url, json=body, headers=tenant.headers)
            assert response.status_code == status, (method, url, response.text)
            assert events == ["open", outcome, f"response {status}"], (method, url)
    assert await session.scalar(select(func.count()).select_from(App).where(App.id == owned.id)) == 0
