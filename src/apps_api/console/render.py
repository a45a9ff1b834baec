"""The console's pages on the browser layer (`web`): its page context and CSP, notices,
redirects, the sign-in form, and `ConsoleRoute`, which makes every answer a page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from apps_api.console.dependencies import LoginRequired, Viewer
from apps_api.kit.errors import APIError
from apps_api.web.browser import Browser, browser_of
from apps_api.web.pages import CONSOLE_CSP, render
from apps_api.web.routes import PageError, PageRoute, handled_status
from apps_api.web.signin import sign_in_page

STYLESHEET_URL = "/console/_static/console.css"
SCRIPT_URL = "/console/_static/console.js"
HOME = "/console/apps"

NOTICES = {
    "app-created": "App created.",
    "app-saved": "App saved.",
    "app-deleted": "App deleted and uninstalled everywhere.",
    "secret-rotated": "Secret rotated. Reveal it below; the previous one works until its grace period ends.",
    "webhook-created": "Webhook created.",
    "webhook-saved": "Webhook saved.",
    "webhook-deleted": "Webhook deleted.",
    "webhook-enabled": "Webhook re-enabled: new events reach it again.",
    "test-sent": "Test event scheduled: this is its first attempt.",
    "redelivered": "Redelivery scheduled: a new attempt appears at the top of the log.",
    "token-revoked": "Token revoked: it no longer works.",
    "uninstalled": "App uninstalled from the organization.",
    "share-added": "App shared.",
    "share-removed": "Share removed.",
}

_ERROR_TITLES = {
    400: "Invalid request",
    402: "Feature missing",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
}


def page(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    viewer: Viewer | None = None,
    trigger_origins: Iterable[str] = (),
    **context: Any,
) -> HTMLResponse:
    """A console page. `trigger_origins`: apps' trigger URL origins that the page's forms are
    redirected to and that its dialog may frame (`manual_dialog`)."""
    context.setdefault("title", "Developer console")
    context.setdefault("section", None)
    context.setdefault("notice", None)
    return render(
        template,
        csp=CONSOLE_CSP,
        origins=trigger_origins,
        status_code=status_code,
        viewer=viewer,
        stylesheet_url=STYLESHEET_URL,
        script_url=SCRIPT_URL,
        csrf_token=viewer.csrf_token if viewer is not None else context.pop("csrf_token", None),
        current_path=request.url.path,
        **context,
    )


def notice(request: Request) -> str | None:
    """The one-time notice a redirect asked this page to show."""
    return NOTICES.get(request.query_params.get("notice") or "")


def app_nav(app: Any, active: str) -> dict[str, Any]:
    """The app's tabs, `active` marked."""
    return {"id": str(app.id), "name": app.name, "active": active}


def redirect(path: str, notice: str | None = None) -> RedirectResponse:
    """303 to a console page (Post/Redirect/Get), with a short notice to show there."""
    if notice:
        path += ("&" if "?" in path else "?") + urlencode({"notice": notice})
    return RedirectResponse(path, status_code=303)


def error_page(
    request: Request,
    status_code: int,
    message: str,
    *,
    viewer: Viewer | None = None,
    title: str | None = None,
) -> HTMLResponse:
    return page(
        request,
        "console/error.html",
        status_code=status_code,
        viewer=viewer,
        title=title or _ERROR_TITLES.get(status_code, "Error"),
        message=message,
    )


def login_page(
    browser: Browser,
    *,
    next_: str,
    status_code: int = 200,
    error: str | None = None,
    email: str | None = None,
) -> HTMLResponse:
    """The sign-in form; keeps (or starts) the anonymous session its CSRF token is bound to."""
    return sign_in_page(
        browser,
        lambda token: page(
            browser.request,
            "console/login.html",
            status_code=status_code,
            title="Sign in",
            csrf_token=token,
            next=next_,
            error=error,
            email=email,
        ),
    )


def console_next(browser: Browser, value: str | None) -> str:
    """Only console pages are a place to go after signing in."""
    next_ = browser.safe_next(value)
    return next_ if next_ is not None and next_.startswith("/console/") else HOME


def _here(browser: Browser) -> str:
    """The page asked for, as a `next` for after signing in (GET only; a POST goes home)."""
    url = browser.request.url
    if browser.request.method != "GET":
        return HOME
    return browser.safe_next(url.path + ("?" + url.query if url.query else "")) or HOME


def page_router() -> APIRouter:
    """A router of console pages (every answer a page, none in OpenAPI)."""
    return APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


class ConsoleRoute(PageRoute):
    """Every console answer is a page: no session -> the login page; an API error -> its HTML page;
    a failure -> the status the API's own handler decides, as a page."""

    def error_page(self, request: Request, error: PageError) -> Response:
        viewer = getattr(request.state, "console_viewer", None)
        return error_page(request, error.status_code, error.message, viewer=viewer, title=error.title)

    async def page_of(self, request: Request, exc: Exception) -> Response | None:
        if isinstance(exc, LoginRequired):
            browser = browser_of(request)
            return login_page(browser, next_=_here(browser))
        if isinstance(exc, RequestValidationError):
            # Only path parameters and a cursor are declared: a malformed one names nothing that exists.
            return error_page(request, 404, "This page does not exist.")
        if isinstance(exc, APIError):
            return self.error_page(request, PageError(exc.status_code, exc.detail))
        return await _failure_page(request, exc)


async def _failure_page(request: Request, exc: Exception) -> Response:
    answer = await handled_status(request, exc)
    if answer is None:
        raise exc
    if answer.status_code == 503:
        unavailable = error_page(
            request,
            503,
            "The service is temporarily unavailable. Nothing was changed; try again in a few seconds.",
            title="Temporarily unavailable",
        )
        unavailable.headers["Retry-After"] = answer.headers.get("Retry-After", "5")
        return unavailable
    if answer.status_code < 500:
        return error_page(request, answer.status_code, "The request was refused. Nothing was changed.")
    return error_page(
        request,
        answer.status_code,
        "Something went wrong on our side. Nothing was changed.",
        title="Something went wrong",
    )
