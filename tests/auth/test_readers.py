"""The readers (auth/dependencies.py): one read connection a GET, back before the response is sent.

The readers enter their connection on FastAPI's stack of function-scoped dependencies
(`fastapi_function_astack`), not as generator dependencies: these tests pin that the connection
is checked out once, and returned before the response starts, whatever the request's outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from apps_api.kit.driver import ReadConnection
from tests.conftest import read_connection_of
from tests.fixtures.factories import Tenant, make_app
from tests.fixtures.recording import recording_response_starts

ORGS = "/api/v5/orgs"


def _recording(app: Any, connection: AsyncConnection, events: list[str]) -> Any:
    """The app with its read connections and its response start written to `events`."""

    @asynccontextmanager
    async def read_connections() -> AsyncIterator[ReadConnection]:
        events.append("checkout")
        try:
            yield await read_connection_of(connection)
        finally:
            events.append("return")

    app.state.read_connections = read_connections
    return recording_response_starts(app, events)


async def test_a_get_returns_its_one_connection_before_its_response_whatever_the_outcome(
    app: Any, connection: AsyncConnection, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    owned = await make_app(session, tenant.organization)
    events: list[str] = []
    transport = httpx.ASGITransport(app=_recording(app, connection, events))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        cases = [
            (f"{ORGS}/{tenant.org_id}/owned_apps/{owned.id}", tenant.headers, 200),
            (f"{ORGS}/{tenant.org_id}/owned_apps/{uuid.uuid4()}", tenant.headers, 404),
            (f"{ORGS}/{tenant.org_id}/owned_apps/{owned.id}", {}, 401),
            (f"{ORGS}/{tenant.org_id}/owned_apps/{owned.id}", other_tenant.headers, 403),
            (f"{ORGS}/{tenant.org_id}/owned_apps/not-a-uuid", tenant.headers, 400),
            (f"{ORGS}/{tenant.org_id}/owned_apps", tenant.headers, 200),
            ("/api/v5/public_apps", tenant.headers, 200),
            ("/api/v5/public_apps?page_size=0", tenant.headers, 400),
        ]
        for url, headers, status in cases:
            events.clear()
            response = await client.get(url, headers=headers)
            assert response.status_code == status, (url, response.text)
            assert events == ["checkout", "return", f"response {status}"], url
