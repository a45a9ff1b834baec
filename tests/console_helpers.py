"""Signing in to the developer console and posting its forms, for the in-process console tests."""

from __future__ import annotations

import httpx

from tests.installflow_helpers import PASSWORD, csrf_of


async def sign_in(client: httpx.AsyncClient, email: str | None, *, next_: str = "/console/apps") -> None:
    """Open the console's sign-in page and sign in (the session cookie stays in the client)."""
    page = await client.get("/console/login", params={"next": next_})
    assert page.status_code == 200, page.text
    response = await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(page), "next": next_, "email": email or "", "password": PASSWORD},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_


async def csrf(client: httpx.AsyncClient, page: str = "/console/apps") -> str:
    """The CSRF token of the client's session, read from a console page's form."""
    response = await client.get(page)
    assert response.status_code == 200, response.text
    return csrf_of(response)
