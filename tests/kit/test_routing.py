"""kit/routing.py: routes included flat, and schemes documented without a dependency level.

No `from __future__ import annotations`: the routes are declared inside the tests, and FastAPI
resolves their string annotations in the module's namespace, where local names are not.
"""

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import APIKeyHeader

from apps_api.kit.routing import documents_security, include_flat


class CountedHeader(APIKeyHeader):
    """An API key scheme that counts how often FastAPI resolves it."""

    calls = 0

    async def __call__(self, request: Request) -> str | None:
        CountedHeader.calls += 1
        return await super().__call__(request)


def application() -> tuple[FastAPI, CountedHeader]:
    scheme = CountedHeader(name="Authorization", auto_error=False, scheme_name="Counted")

    @documents_security(scheme)
    async def caller(request: Request) -> str:
        return request.headers.get("authorization") or "nobody"

    inner, outer = APIRouter(), APIRouter()

    @inner.get("/who")
    async def who(name: Annotated[str, Depends(caller)]) -> dict[str, Any]:
        return {"caller": name}

    @inner.get("/open")
    async def open_route() -> dict[str, Any]:
        return {}

    outer.include_router(inner)
    app = FastAPI()
    include_flat(app, outer)
    return app, scheme


async def test_a_documented_scheme_is_in_openapi_but_never_resolved() -> None:
    app, _ = application()
    schema = app.openapi()
    assert schema["paths"]["/who"]["get"]["security"] == [{"Counted": []}]
    assert "security" not in schema["paths"]["/open"]["get"]
    assert schema["components"]["securitySchemes"]["Counted"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }

    CountedHeader.calls = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.get("/who", headers={"Authorization": "Token k"})
    assert answer.status_code == 200 and answer.json() == {"caller": "Token k"}
    assert CountedHeader.calls == 0  # the dependency read the header itself: no level of its own


async def test_the_same_scheme_as_a_dependency_is_resolved_at_every_request() -> None:
    """The control: declared as a plain dependency, FastAPI calls the scheme (what
    `documents_security` saves), and OpenAPI shows the same requirement."""
    scheme = CountedHeader(name="Authorization", auto_error=False, scheme_name="Counted")
    router = APIRouter()

    @router.get("/who")
    async def who(key: Annotated[str | None, Depends(scheme)]) -> dict[str, Any]:
        return {"caller": key}

    app = FastAPI()
    include_flat(app, router)
    assert app.openapi()["paths"]["/who"]["get"]["security"] == [{"Counted": []}]
    CountedHeader.calls = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/who", headers={"Authorization": "Token k"})).status_code == 200
    assert CountedHeader.calls == 1
