"""A page request's browser: its session cookie as read, the CSRF token bound to it, this service's
public origin (which `next` may name), and how cookies are written back to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from apps_api.kit.deps import app_settings
from apps_api.settings import Settings
from apps_api.web.session import (
    BrowserSession,
    DeviceCookie,
    csrf_token,
    csrf_valid,
    is_https,
    new_session,
    read_device,
    read_session,
    safe_next,
    write_session,
)


@dataclass(frozen=True)
class Browser:
    request: Request
    settings: Settings
    session: BrowserSession | None

    @property
    def secure(self) -> bool:
        """Whether cookies are `Secure` (the public URL is https, or else this request was)."""
        return is_https(self.request, public_base_url=self.settings.public_base_url)

    @property
    def origin(self) -> str:
        """This service's public origin: APPS_API_PUBLIC_BASE_URL's, else the request's."""
        return public_origin(request_base_url=str(self.request.base_url), settings=self.settings)

    @property
    def device(self) -> DeviceCookie | None:
        return read_device(self.request, secret_key=self.settings.secret_key)

    @property
    def client_host(self) -> str:
        return self.request.client.host if self.request.client else "unknown"

    def csrf_token(self, browser_session: BrowserSession | None = None) -> str:
        """The token the forms of `browser_session` (default: this cookie's) must post back."""
        session = browser_session or self.session
        assert session is not None
        return csrf_token(session, secret_key=self.settings.secret_key)

    def csrf_valid(self, token: str | None) -> bool:
        """Whether `token` was issued for this browser's very session."""
        return csrf_valid(self.session, token or None, secret_key=self.settings.secret_key)

    def anonymous(self) -> BrowserSession:
        """The pre-login session a sign-in form is bound to: kept (its CSRF token stays valid across
        tabs), else a new one."""
        if self.session is not None and self.session.user_id is None:
            return self.session
        return new_session()

    def write(self, response: Response, browser_session: BrowserSession) -> None:
        write_session(response, browser_session, secret_key=self.settings.secret_key, secure=self.secure)

    def safe_next(self, value: str | None) -> str | None:
        """`next` as a path on this service's public origin, or None when it must be refused."""
        return safe_next(value, origin=self.origin)

    def absolute_url(self, path: str) -> str:
        """`path` on this service's public origin."""
        return absolute_url(path, request_base_url=str(self.request.base_url), settings=self.settings)


def browser_of(request: Request) -> Browser:
    settings = app_settings(request)
    return Browser(request, settings, read_session(request, secret_key=settings.secret_key))


async def _browser(request: Request) -> Browser:
    return browser_of(request)


BrowserDep = Annotated[Browser, Depends(_browser)]


def public_origin(*, request_base_url: str, settings: Settings) -> str:
    """This service's public origin: APPS_API_PUBLIC_BASE_URL's, else the request's (`scheme://host[:port]`)."""
    parts = urlsplit(settings.public_base_url or request_base_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def absolute_url(path: str, *, request_base_url: str, settings: Settings) -> str:
    """`path` on this service's public origin."""
    origin = (settings.public_base_url or request_base_url).rstrip("/")
    return origin + path
