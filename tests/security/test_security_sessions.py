"""Issue 13, item 4: logout, a password change and user deletion end every session issued before.

Each test saves the session cookie, ends the session, then replays the saved cookie from a
fresh browser (as an attacker who copied it would): the install page asks to log in again.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.platform import service
from apps_api.web.session import COOKIE_NAME
from tests.fixtures.factories import make_tenant
from tests.fixtures.installflow import csrf_of, install_url, log_in, make_installer, make_public_app

NEXT = "/settings/apps"


def _browser(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _is_logged_in(app: Any, cookie: str, app_id: Any) -> bool:
    async with _browser(app) as browser:
        browser.cookies.set(COOKIE_NAME, cookie)
        page = await browser.get(install_url(app_id, NEXT))
    assert page.status_code == 200, page.text
    return "Log in to install an app" not in page.text


@pytest.mark.parametrize("end", ["logout", "password", "deletion"])
async def test_a_saved_cookie_is_worthless_after_the_session_ends(
    client: httpx.AsyncClient, session: AsyncSession, end: str
) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    public = await make_public_app(session, owner.organization)
    page = await log_in(client, public.id, installer.user.email)
    saved = client.cookies.get(COOKIE_NAME, path="/apps/")
    # A second browser of the same user, logged in on its own.
    async with _browser(app) as other:
        await log_in(other, public.id, installer.user.email)
        other_cookie = other.cookies.get(COOKIE_NAME, path="/apps/")
    assert await _is_logged_in(app, saved, public.id)
    assert await _is_logged_in(app, other_cookie, public.id)

    if end == "logout":
        response = await client.post(
            f"/apps/{public.id}/install/logout", data={"csrf_token": csrf_of(page), "next": NEXT}
        )
        assert response.status_code == 303
    elif end == "password":
        await service.set_password(session=session, user_id=installer.user.id, password="a new password")
    else:
        await service.delete_user(session=session, user_id=installer.user.id)

    # The replayed cookies (this browser's and the other one's) are logged out...
    assert not await _is_logged_in(app, saved, public.id)
    assert not await _is_logged_in(app, other_cookie, public.id)
    # ...and a form of the old session installs nothing.
    async with _browser(app) as attacker:
        attacker.cookies.set(COOKIE_NAME, saved)
        refused = await attacker.post(
            f"/apps/{public.id}/install", data={"csrf_token": csrf_of(page), "next": NEXT}
        )
    assert refused.status_code == 303 and refused.headers["location"] == install_url(public.id, NEXT)
    if end == "logout":
        # Logging in again works and starts a session of the new epoch.
        async with _browser(app) as again:
            await log_in(again, public.id, installer.user.email)
            assert await _is_logged_in(app, again.cookies.get(COOKIE_NAME, path="/apps/"), public.id)
