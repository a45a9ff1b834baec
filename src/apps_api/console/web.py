"""The console's page machinery: rendering with the install flow's headers, the signed-in viewer,
the API's access checks, CSRF, and HTML error pages.

The console shares the install flow's sign-in: the same signed cookie (set for `/apps/` and
`/console/`), the same CSRF tokens bound to it. Who may do what is decided by the API's own
check functions (`auth.dependencies`) on a `Principal` of the signed-in user, and resources are
loaded by the API's own loaders (`catalog.dependencies.owned_app`, ...): a foreign app is the
same 404 here as there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from apps_api.auth.dependencies import check_organization_provider, check_organization_settings
from apps_api.auth.service import Principal
from apps_api.installflow import service as installflow
from apps_api.installflow.session import (
    BrowserSession,
    csrf_token,
    csrf_valid,
    is_https,
    new_session,
    read_session,
    safe_next,
    write_session,
)
from apps_api.kit.errors import APIError
from apps_api.settings import Settings

STATIC = Path(__file__).resolve().parents[1] / "static"
STYLESHEET_URL = "/console/_static/console.css"
SCRIPT_URL = "/console/_static/console.js"
HOME = "/console/apps"

_templates = Environment(
    loader=PackageLoader("apps_api", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)

# The install flow's headers, plus one same-origin script (copy buttons, pending deliveries that
# re-read their page: `connect-src 'self'`; every page works without it).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "img-src 'self' https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_ERROR_TITLES = {
    400: "Invalid request",
    402: "Feature missing",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
}


class LoginRequired(Exception):
    """No live session: answer with the login page (for the page asked for)."""


@dataclass
class Viewer:
    """The signed-in user of a console request, as the API's `Principal`."""

    principal: Principal
    browser_session: BrowserSession
    csrf_token: str

    @property
    def user(self) -> Any:
        return self.principal.user

    @property
    def organization(self) -> Any:
        return self.principal.organization


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    viewer: Viewer | None = None,
    trigger_origins: Sequence[str] = (),
    **context: Any,
) -> HTMLResponse:
    """A page with the install flow's headers: no frames, no caching, forms only to this site.

    `trigger_origins`: apps' trigger URL origins that the page's forms are redirected to (CSP
    `form-action` covers redirects) and that its dialog may frame (`manual_dialog`).
    """
    context.setdefault("title", "Developer console")
    context.setdefault("section", None)
    context.setdefault("notice", None)
    html = _templates.get_template(template).render(
        viewer=viewer,
        stylesheet_url=STYLESHEET_URL,
        script_url=SCRIPT_URL,
        csrf_token=viewer.csrf_token if viewer is not None else context.pop("csrf_token", None),
        current_path=request.url.path,
        **context,
    )
    headers = SECURITY_HEADERS
    if trigger_origins:
        origins = " ".join(sorted(set(trigger_origins)))
        policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
            "form-action 'self';", f"form-action 'self' {origins}; frame-src 'self' {origins};"
        )
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def error_page(
    request: Request,
    status_code: int,
    message: str,
    *,
    viewer: Viewer | None = None,
    title: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "console/error.html",
        status_code=status_code,
        viewer=viewer,
        title=title or _ERROR_TITLES.get(status_code, "Error"),
        message=message,
    )


def login_page(
    request: Request,
    *,
    next_: str,
    browser_session: BrowserSession | None,
    status_code: int = 200,
    error: str | None = None,
    email: str | None = None,
) -> HTMLResponse:
    """The sign-in form; keeps (or starts) the anonymous session its CSRF token is bound to."""
    settings = settings_of(request)
    anonymous = (
        browser_session if browser_session is not None and browser_session.user_id is None else new_session()
    )
    response = render(
        request,
        "console/login.html",
        status_code=status_code,
        title="Sign in",
        csrf_token=csrf_token(anonymous, secret_key=settings.secret_key),
        next=next_,
        error=error,
        email=email,
    )
    write_session(
        response,
        anonymous,
        secret_key=settings.secret_key,
        secure=is_https(request, public_base_url=settings.public_base_url),
    )
    return response


def _here(request: Request) -> str:
    """The page asked for, as a `next` for after signing in (GET only; a POST goes home)."""
    if request.method != "GET":
        return HOME
    path = request.url.path + ("?" + request.url.query if request.url.query else "")
    return safe_next(path, origin=console_origin(request)) or HOME


def console_origin(request: Request) -> str:
    """This service's public origin (a `next` may name it), as the install flow computes it."""
    return installflow.public_origin(request_base_url=str(request.base_url), settings=settings_of(request))


class ConsoleRoute(APIRoute):
    """Every console answer is a page: no session -> the login page; an API error -> its HTML page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                browser_session = read_session(request, secret_key=settings_of(request).secret_key)
                return login_page(request, next_=_here(request), browser_session=browser_session)
            except RequestValidationError:
                # Only path parameters are declared: a malformed id names nothing that exists.
                return error_page(request, 404, "This page does not exist.")
            except APIError as exc:
                viewer = getattr(request.state, "console_viewer", None)
                return error_page(request, exc.status_code, exc.detail, viewer=viewer)
            except Exception as exc:
                # The API's own handler decides the status and logs (503 with Retry-After when
                # PostgreSQL is away, else 500); the browser gets that status as a page.
                return await _failure_page(request, exc)

        return page_handler


async def _failure_page(request: Request, exc: Exception) -> Response:
    handler = next(
        (
            request.app.exception_handlers[cls]
            for cls in type(exc).__mro__
            if cls in request.app.exception_handlers
        ),
        None,
    )
    if handler is None:
        raise exc
    answer: Response = await handler(request, exc)
    if answer.status_code == 503:
        page = error_page(
            request,
            503,
            "The service is temporarily unavailable. Nothing was changed; try again in a few seconds.",
            title="Temporarily unavailable",
        )
        page.headers["Retry-After"] = answer.headers.get("Retry-After", "5")
        return page
    if answer.status_code < 500:
        return error_page(request, answer.status_code, "The request was refused. Nothing was changed.")
    return error_page(
        request,
        answer.status_code,
        "Something went wrong on our side. Nothing was changed.",
        title="Something went wrong",
    )


async def signed_in(request: Request, session: Any) -> Viewer:
    """The live user of the session cookie as a `Principal` (kind user), else `LoginRequired`.

    Built like the API's principal of a user's token: the user, their organization and their
    permissions; the checks below then decide as they do for the API.
    """
    settings = settings_of(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    logged_in = await installflow.session_user(
        session=session, browser_session=browser_session, require_settings=False
    )
    if logged_in is None or browser_session is None:
        raise LoginRequired
    viewer = Viewer(
        principal=Principal(user=logged_in.user, organization=logged_in.organization),
        browser_session=browser_session,
        csrf_token=csrf_token(browser_session, secret_key=settings.secret_key),
    )
    request.state.console_viewer = viewer
    return viewer


async def _settings_checks(principal: Principal) -> None:
    """The API's `org_settings` checks, in the viewer's own organization (403 pages)."""
    check_organization_settings(principal, principal.organization_id)


async def _provider_checks(principal: Principal) -> None:
    """The API's `org_provider` checks: the provider's routes (owned apps and everything below)."""
    check_organization_provider(principal, principal.organization_id)


async def settings_viewer(request: Request, session: Any) -> Viewer:
    """The viewer as the API's `OrgSettingsPrincipal` would admit them."""
    viewer = await signed_in(request, session)
    await _settings_checks(viewer.principal)
    return viewer


async def provider_viewer(request: Request, session: Any) -> Viewer:
    """The viewer as the API's `OrgProviderPrincipal` would admit them."""
    viewer = await signed_in(request, session)
    await _provider_checks(viewer.principal)
    return viewer


async def posted_form(request: Request, session: Any, *, provider: bool = True) -> tuple[Viewer, FormData]:
    """A state-changing POST: signed in, a CSRF token of this very session, then the access checks."""
    viewer = await signed_in(request, session)
    form = await request.form()
    token = form.get("csrf_token")
    if not csrf_valid(
        viewer.browser_session,
        token if isinstance(token, str) else None,
        secret_key=settings_of(request).secret_key,
    ):
        raise FormExpired
    await (_provider_checks if provider else _settings_checks)(viewer.principal)
    return viewer, form


class FormExpired(APIError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "The form was not sent from this site, or your session changed. Nothing was changed: "
            "open the page again and retry.",
        )


def redirect(path: str, notice: str | None = None) -> RedirectResponse:
    """303 to a console page (Post/Redirect/Get), with a short notice to show there."""
    if notice:
        path += ("&" if "?" in path else "?") + urlencode({"notice": notice})
    return RedirectResponse(path, status_code=303)


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None
