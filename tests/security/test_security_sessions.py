"""Issue 13, item 4: logout, a password change and user deletion end every session issued before.

Each test saves the session cookie, ends the session, then replays the saved cookie from a
fresh browser (as an attacker who copied it would): the install page asks to log in again.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import httpx
import pytest
from fastapi import Request, Response
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import User
from apps_api.platform import service
from apps_api.web import session as session_module
from apps_api.web.session import (
    COOKIE_NAME,
    DEVICE_COOKIE_NAME,
    SESSION_TTL_SECONDS,
    BrowserSession,
    clear_session,
    is_https,
    read_device,
    read_session,
    safe_next,
    set_sign_in_cookies,
    write_session,
)
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


# The cookies' and `next`'s rules, checked on web.session's functions directly (mutation triage).

SECRET = "a test secret key"
ORIGIN = "https://service.example.com"


def _request(cookies: dict[str, str], *, scheme: str = "http") -> Request:
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": scheme,
        "method": "GET",
        "path": "/apps/",
        "query_string": b"",
        "server": ("service.example.com", 443 if scheme == "https" else 80),
        "headers": [(b"cookie", header.encode())] if header else [],
    }
    return Request(scope)


def _user(epoch: int = 3) -> User:
    return User(id=uuid.uuid4(), email="who@example.com", password_hash="a hash", session_epoch=epoch)


def _set_cookies(response: Response) -> list[dict[str, str]]:
    """Each Set-Cookie header as {attribute (lowercased): value}, the cookie's name under "name"."""
    parsed = []
    for name, value in response.raw_headers:
        if name != b"set-cookie":
            continue
        first, *attributes = value.decode().split("; ")
        cookie_name, cookie_value = first.split("=", 1)
        cookie = {"name": cookie_name, "value": cookie_value}
        for attribute in attributes:
            key, _, attr_value = attribute.partition("=")
            cookie[key.lower()] = attr_value
        parsed.append(cookie)
    return parsed


@pytest.mark.parametrize("secure", [True, False])
def test_sign_in_sets_both_cookies_httponly_lax_on_both_paths(secure: bool) -> None:
    response = Response()
    user = _user()
    set_sign_in_cookies(response, user, secret_key=SECRET, secure=secure)
    cookies = _set_cookies(response)
    expected = {
        (COOKIE_NAME, "/apps/", str(SESSION_TTL_SECONDS)),
        (COOKIE_NAME, "/console/", str(SESSION_TTL_SECONDS)),
        (DEVICE_COOKIE_NAME, "/apps/", str(180 * 24 * 60 * 60)),
        (DEVICE_COOKIE_NAME, "/console/", str(180 * 24 * 60 * 60)),
    }
    assert {(c["name"], c["path"], c["max-age"]) for c in cookies} == expected
    assert len(cookies) == 4
    for cookie in cookies:
        assert "httponly" in cookie, cookie
        assert cookie["samesite"].lower() == "lax", cookie
        assert ("secure" in cookie) is secure, cookie
    # The device cookie reads back as this user's, with a nonce.
    device_value = next(c["value"] for c in cookies if c["name"] == DEVICE_COOKIE_NAME)
    device = read_device(_request({DEVICE_COOKIE_NAME: device_value}), secret_key=SECRET)
    assert device is not None and device.user_id == user.id and device.nonce


@pytest.mark.parametrize("secure", [True, False])
def test_clearing_the_session_expires_it_httponly_lax_on_both_paths(secure: bool) -> None:
    response = Response()
    clear_session(response, secure=secure)
    cookies = _set_cookies(response)
    assert sorted((c["name"], c["path"]) for c in cookies) == [
        (COOKIE_NAME, "/apps/"),
        (COOKIE_NAME, "/console/"),
    ]
    for cookie in cookies:
        assert cookie["max-age"] == "0", cookie
        assert "httponly" in cookie, cookie
        assert cookie["samesite"].lower() == "lax", cookie
        assert ("secure" in cookie) is secure, cookie


def test_a_tampered_or_incomplete_device_cookie_is_no_device() -> None:
    response = Response()
    set_sign_in_cookies(response, _user(), secret_key=SECRET, secure=False)
    value = next(c["value"] for c in _set_cookies(response) if c["name"] == DEVICE_COOKIE_NAME)
    assert read_device(_request({DEVICE_COOKIE_NAME: value}), secret_key=SECRET) is not None
    # Signed with another key, or edited: a bad signature.
    assert read_device(_request({DEVICE_COOKIE_NAME: value}), secret_key="another key") is None
    assert read_device(_request({DEVICE_COOKIE_NAME: "x" + value}), secret_key=SECRET) is None
    # Correctly signed but without the nonce, or without the user.
    signer = URLSafeTimedSerializer(SECRET, salt=session_module._DEVICE_SALT)
    no_nonce = signer.dumps({"uid": str(uuid.uuid4())})
    assert read_device(_request({DEVICE_COOKIE_NAME: no_nonce}), secret_key=SECRET) is None
    no_user = signer.dumps({"n": "a nonce"})
    assert read_device(_request({DEVICE_COOKIE_NAME: no_user}), secret_key=SECRET) is None
    assert read_device(_request({}), secret_key=SECRET) is None


@pytest.mark.parametrize(("scheme", "expected"), [("https", True), ("http", False), ("ws", False)])
def test_only_an_https_request_counts_as_https(scheme: str, expected: bool) -> None:
    """Without a public base URL the request's own scheme decides whether cookies are Secure."""
    assert is_https(_request({}, scheme=scheme), public_base_url=None) is expected
    assert is_https(_request({}, scheme=scheme), public_base_url="https://service.example.com")
    assert not is_https(_request({}, scheme=scheme), public_base_url="http://service.example.com")


@pytest.mark.parametrize("epoch", [True, False, "3", 2.0])
def test_a_session_epoch_that_is_not_an_int_is_no_epoch(epoch: Any) -> None:
    response = Response()
    odd = BrowserSession(sid="a sid", user_id=uuid.uuid4(), password_digest="d", epoch=epoch)
    write_session(response, odd, secret_key=SECRET, secure=False)
    value = _set_cookies(response)[0]["value"]
    read = read_session(_request({COOKIE_NAME: value}), secret_key=SECRET)
    assert read is not None and read.sid == "a sid" and read.epoch is None
    # An int epoch is kept.
    response = Response()
    write_session(response, dataclasses.replace(odd, epoch=7), secret_key=SECRET, secure=False)
    value = _set_cookies(response)[0]["value"]
    read = read_session(_request({COOKIE_NAME: value}), secret_key=SECRET)
    assert read is not None and read.epoch == 7


@pytest.mark.parametrize(
    ("value", "origin", "expected"),
    [
        ("/a!b", ORIGIN, "/a!b"),  # '!' (0x21) is no control character
        ("/a~b", ORIGIN, "/a~b"),  # '~' (0x7E) neither
        ("/a\x7fb", ORIGIN, None),  # DEL is
        ("/a b", ORIGIN, None),
        ("/a\x00b", ORIGIN, None),
        ("https://user@service.example.com/x", ORIGIN, None),  # a user name alone
        ("https://:pw@service.example.com/x", ORIGIN, None),  # a password alone
        ("https://user:pw@service.example.com/x", ORIGIN, None),
        ("https://service.example.com/x?q=1", ORIGIN, "/x?q=1"),
        ("https://service.example.com:443/x", ORIGIN, "/x"),
        ("https://service.example.com/x", "https://service.example.com:443", "/x"),
        ("http://service.example.com:80/x", "http://service.example.com", "/x"),
        ("http://service.example.com/x", "http://service.example.com:80", "/x"),
        ("http://service.example.com/x", "http://service.example.com:81", None),
        ("http://service.example.com/x", "http://service.example.com:79", None),
        ("http://service.example.com/x", ORIGIN, None),
        ("https:///x", ORIGIN, None),  # an http(s) URL without a host
        ("https:x", ORIGIN, None),
        ("javascript:alert(1)", ORIGIN, None),
    ],
)
def test_safe_next_characters_credentials_and_default_ports(
    value: str, origin: str, expected: str | None
) -> None:
    assert safe_next(value, origin=origin) == expected


@pytest.mark.parametrize(
    "data",
    [
        ["a sid"],
        "a sid",
        None,
        {},
        {"sid": 5},
        {"sid": "a sid", "uid": "not a uuid"},
        {"sid": "a sid", "uid": 12},
    ],
)
def test_a_signed_session_cookie_of_another_shape_is_no_session(data: Any) -> None:
    """Correctly signed but not a session's payload: logged out, never an error (a 500)."""
    value = URLSafeTimedSerializer(SECRET, salt=session_module._SESSION_SALT).dumps(data)
    assert read_session(_request({COOKIE_NAME: value}), secret_key=SECRET) is None


@pytest.mark.parametrize("nonce", ["", 5, None, ["a nonce"]])
def test_a_device_cookie_without_a_nonce_string_is_no_device(nonce: Any) -> None:
    # The nonce is the device's own throttling subject: an empty or odd one must not count.
    signer = URLSafeTimedSerializer(SECRET, salt=session_module._DEVICE_SALT)
    value = signer.dumps({"uid": str(uuid.uuid4()), "n": nonce})
    assert read_device(_request({DEVICE_COOKIE_NAME: value}), secret_key=SECRET) is None


@pytest.mark.parametrize(("length", "status"), [(2000, 200), (2001, 400)])
async def test_a_next_of_at_most_2000_characters_is_accepted(
    client: httpx.AsyncClient, session: AsyncSession, length: int, status: int
) -> None:
    owner = await make_tenant(session, name="Owner")
    app = await make_public_app(session, owner.organization)
    next_ = "/" + "a" * (length - 1)
    page = await client.get(install_url(app.id, next_))
    assert page.status_code == status, page.text
    # Accepted, the login form carries it on whole; refused, it is not echoed.
    assert (f'name="next" value="{next_}"' in page.text) is (status == 200)


async def test_a_next_with_non_ascii_letters_is_followed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Only ASCII controls are refused: a page address with `ü` in it is a place to go back to."""
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_public_app(session, owner.organization)
    next_ = "/settings/apps?q=Müller"
    page = await log_in(client, app.id, installer.user.email, next_=next_)
    assert page.status_code == 200, page.text
    assert f'name="next" value="{next_}"' in page.text
    response = await client.post(f"/apps/{app.id}/install", data={"csrf_token": csrf_of(page), "next": next_})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/settings/apps?q=M%C3%BCller"
