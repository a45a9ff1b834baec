"""`/apps/{app_id}/install`: the browser flow that installs an app (docs/design.md section 7).

Server-rendered pages (no JavaScript): login when there is no session, then a confirmation
page; every POST carries a CSRF token bound to the session. These routes are for browsers,
not API clients, so they are left out of the OpenAPI schema (docs/install-flow.md documents them).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from apps_api.auth.service import Principal
from apps_api.installations.service import AppUserInput, find_installable_app, install_app
from apps_api.installflow import service
from apps_api.installflow.session import (
    BrowserSession,
    clear_session,
    csrf_token,
    csrf_valid,
    is_https,
    new_session,
    read_device,
    read_session,
    safe_next,
    sign_in,
    write_session,
)
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import APIError, BadRequest, Conflict, Forbidden, NotFound
from apps_api.kit.security import HashingBusy
from apps_api.kit.throttle import ThrottleUnavailable
from apps_api.models import App
from apps_api.platform.service import end_sessions
from apps_api.settings import Settings

router = APIRouter(prefix="/apps", include_in_schema=False)

_templates = Environment(
    loader=PackageLoader("apps_api", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)
_STATIC = Path(__file__).resolve().parents[1] / "static"
STYLESHEET_URL = "/apps/_static/install.css"

NextParam = Annotated[str | None, Query(alias="next")]
FormField = Annotated[str | None, Form()]
CsrfField = Annotated[str | None, Form(alias="csrf_token")]

_FIELD_LABELS = {
    "app_user.first_name": "First name",
    "app_user.last_name": "Last name",
    "app_user.alias": "Alias",
    "allowed_scopes": "Scopes",
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _install_path(app_id: str, next_: str) -> str:
    return f"/apps/{app_id}/install?{urlencode({'next': next_})}"


def _render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    form_action_origins: tuple[str, ...] = (),
    **context: Any,
) -> HTMLResponse:
    """A page with headers that keep it out of frames, caches and other sites' forms."""
    context.setdefault("title", "Install an app")
    context.setdefault("current_user", None)
    context.setdefault("stylesheet_url", STYLESHEET_URL)
    html = _templates.get_template(template).render(**context)
    form_action = " ".join(("'self'", *form_action_origins))
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'self'; img-src https: http: data:; "
                f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
            ),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def _error_page(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    *,
    back_url: str | None = None,
    back_label: str | None = None,
    **context: Any,
) -> HTMLResponse:
    return _render(
        request,
        "error.html",
        status_code=status_code,
        title=title,
        message=message,
        back_url=back_url,
        back_label=back_label,
        **context,
    )


def _safe_next(request: Request, value: str | None) -> str | None:
    """`next` as a path on this service's public origin, or None when it must be refused."""
    origin = service.public_origin(request_base_url=str(request.base_url), settings=_settings(request))
    return safe_next(value, origin=origin)


def _bad_next(request: Request) -> HTMLResponse:
    return _error_page(
        request,
        400,
        "Invalid return address",
        "The link that brought you here asks to send you on to an address outside this site "
        "(or one that is malformed). For your safety it is not followed: `next` must be a path "
        "on this site, such as /settings/apps.",
    )


def _unknown_app(request: Request, next_: str, **context: Any) -> HTMLResponse:
    return _error_page(
        request,
        404,
        "App not available",
        "This app does not exist or cannot be installed by your organization.",
        back_url=next_,
        **context,
    )


def _csrf_failed(request: Request, app_id: str, next_: str) -> HTMLResponse:
    return _error_page(
        request,
        403,
        "Form expired",
        "The form was not sent from this page, or your session expired. Nothing was changed; "
        "open the install page again and retry.",
        back_url=_install_path(app_id, next_),
        back_label="Back to the install page",
    )


def _parse_app_id(app_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(app_id)
    except ValueError:
        return None


def _login_page(
    request: Request,
    *,
    app_id: str,
    next_: str,
    browser_session: BrowserSession,
    status_code: int = 200,
    error: str | None = None,
    email: str | None = None,
) -> HTMLResponse:
    settings = _settings(request)
    response = _render(
        request,
        "login.html",
        status_code=status_code,
        title="Log in",
        csrf_token=csrf_token(browser_session, secret_key=settings.secret_key),
        next=next_,
        login_url=f"/apps/{app_id}/install/login",
        error=error,
        email=email,
    )
    write_session(
        response,
        browser_session,
        secret_key=settings.secret_key,
        secure=is_https(request, public_base_url=settings.public_base_url),
    )
    return response


def _anonymous(browser_session: BrowserSession | None) -> BrowserSession:
    """Keep a pre-login session (its CSRF token stays valid across tabs), else start one."""
    if browser_session is not None and browser_session.user_id is None:
        return browser_session
    return new_session()


async def _installable(
    request: Request,
    *,
    session: SessionDep,
    logged_in: service.LoggedIn,
    app_uuid: uuid.UUID,
    next_: str,
    chrome: dict[str, Any],
) -> App | HTMLResponse:
    """The app, or the page that explains why this organization cannot install it."""
    organization = logged_in.organization
    if not organization.has_active_subscription():
        return _error_page(
            request,
            403,
            "No active subscription",
            f"{organization.name} does not have an active subscription, so it cannot install apps. "
            "The operator of this service can renew it (ask your administrator).",
            back_url=next_,
            **chrome,
        )
    if not organization.has_feature("apps"):
        return _error_page(
            request,
            403,
            "Apps feature missing",
            f"{organization.name} does not have the Apps feature, so it cannot install apps. "
            "The operator of this service can enable it (ask your administrator).",
            back_url=next_,
            **chrome,
        )
    app = await find_installable_app(session=session, organization_id=organization.id, app_id=app_uuid)
    if app is None:
        return _unknown_app(request, next_, **chrome)
    if await service.is_installed(session=session, app_id=app.id, organization_id=organization.id):
        return _already_installed(request, app.name, organization.name, next_, chrome)
    return app


def _already_installed(
    request: Request, app_name: str, organization_name: str, next_: str, chrome: dict[str, Any]
) -> HTMLResponse:
    return _error_page(
        request,
        409,
        "Already installed",
        f"{app_name} is already installed in {organization_name}.",
        back_url=next_,
        back_label="Continue",
        **chrome,
    )


def _chrome(
    request: Request, logged_in: service.LoggedIn, browser_session: BrowserSession, app_id: str, next_: str
) -> dict[str, Any]:
    """What every logged-in page shows: who is logged in and the logout form."""
    return {
        "current_user": logged_in.user,
        "current_organization": logged_in.organization,
        "csrf_token": csrf_token(browser_session, secret_key=_settings(request).secret_key),
        "logout_url": f"/apps/{app_id}/install/logout",
        "next": next_,
    }


def _confirm_page(
    request: Request,
    *,
    app_view: dict[str, Any],
    app_user: dict[str, str | None],
    chrome: dict[str, Any],
    status_code: int = 200,
    error: str | None = None,
    errors: dict[str, list[str]] | None = None,
) -> HTMLResponse:
    origin = app_view.get("trigger_origin")
    return _render(
        request,
        "confirm.html",
        status_code=status_code,
        form_action_origins=(origin,) if origin else (),
        title=f"Install {app_view['name']}",
        app=app_view,
        app_user=app_user,
        install_url=f"/apps/{app_view['id']}/install",
        error=error,
        errors={_FIELD_LABELS.get(key, key): value for key, value in (errors or {}).items()},
        **chrome,
    )


@router.get("/_static/install.css")
async def stylesheet() -> FileResponse:
    return FileResponse(
        _STATIC / "install.css", media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/{app_id}/install", response_class=HTMLResponse)
async def install_page(
    request: Request, session: SessionDep, app_id: str, next: NextParam = None
) -> Response:
    """Login page without a session; otherwise the confirmation page."""
    next_ = _safe_next(request, next)
    if next_ is None:
        return _bad_next(request)
    app_uuid = _parse_app_id(app_id)
    if app_uuid is None:
        return _unknown_app(request, next_)
    settings = _settings(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    logged_in = await service.session_user(session=session, browser_session=browser_session)
    if logged_in is None or browser_session is None:
        return _login_page(request, app_id=app_id, next_=next_, browser_session=_anonymous(browser_session))
    chrome = _chrome(request, logged_in, browser_session, app_id, next_)
    app = await _installable(
        request, session=session, logged_in=logged_in, app_uuid=app_uuid, next_=next_, chrome=chrome
    )
    if isinstance(app, Response):
        return app
    return _confirm_page(
        request,
        app_view=service.app_view(app),
        app_user={
            "first_name": app.app_user_default_first_name,
            "last_name": app.app_user_default_last_name,
            "alias": app.app_user_default_alias,
        },
        chrome=chrome,
    )


@router.post("/{app_id}/install/login", response_class=HTMLResponse)
async def login(
    request: Request,
    session: SessionDep,
    app_id: str,
    csrf: CsrfField = None,
    next: FormField = None,
    email: FormField = None,
    password: FormField = None,
) -> Response:
    """Check the credentials; on success start a fresh logged-in session and go to the install page."""
    next_ = _safe_next(request, next)
    if next_ is None:
        return _bad_next(request)
    if _parse_app_id(app_id) is None:
        return _unknown_app(request, next_)
    settings = _settings(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    if not csrf_valid(browser_session, csrf, secret_key=settings.secret_key):
        return _csrf_failed(request, app_id, next_)
    try:
        attempt = await service.throttled_login(
            session=session,
            redis=getattr(request.app.state, "arq", None),
            email=email or "",
            password=password or "",
            client_host=request.client.host if request.client else "unknown",
            device=read_device(request, secret_key=settings.secret_key),
        )
        if attempt.locked_seconds:
            return _throttled(
                request,
                app_id=app_id,
                next_=next_,
                browser_session=browser_session,
                seconds=attempt.locked_seconds,
            )
        logged_in = attempt.logged_in
    except (HashingBusy, ThrottleUnavailable):
        busy = _error_page(
            request,
            503,
            "Try again in a moment",
            "Too many logins are being checked right now. Nothing was changed; please retry.",
            back_url=_install_path(app_id, next_),
            back_label="Back to the install page",
        )
        busy.headers["Retry-After"] = "5"
        return busy
    if logged_in is None:
        return _login_page(
            request,
            app_id=app_id,
            next_=next_,
            browser_session=_anonymous(browser_session),
            status_code=400,
            error=(
                "Those credentials do not work here. Check the email and password; the account "
                "must also have the settings permission to install apps (your administrator can grant it)."
            ),
            email=email,
        )
    response = RedirectResponse(_install_path(app_id, next_), status_code=303)
    sign_in(
        response,
        logged_in.user,
        secret_key=settings.secret_key,
        secure=is_https(request, public_base_url=settings.public_base_url),
    )
    return response


def _throttled(
    request: Request, *, app_id: str, next_: str, browser_session: BrowserSession | None, seconds: int
) -> HTMLResponse:
    minutes = max(1, -(-seconds // 60))
    response = _login_page(
        request,
        app_id=app_id,
        next_=next_,
        browser_session=_anonymous(browser_session),
        status_code=429,
        error=(
            "Too many failed logins for this account or from this network. For your safety, "
            f"logging in is paused: try again in {minutes} minute{'s' if minutes != 1 else ''}."
        ),
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@router.post("/{app_id}/install/logout", response_class=HTMLResponse)
async def logout(
    request: Request, session: SessionDep, app_id: str, csrf: CsrfField = None, next: FormField = None
) -> Response:
    """End the user's sessions (this browser's and any other) and go back to the install page."""
    next_ = _safe_next(request, next)
    if next_ is None:
        return _bad_next(request)
    if _parse_app_id(app_id) is None:
        return _unknown_app(request, next_)
    settings = _settings(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    if not csrf_valid(browser_session, csrf, secret_key=settings.secret_key):
        return _csrf_failed(request, app_id, next_)
    # Clearing the cookie is not enough: a copy of it (saved, stolen) must stop working too.
    if browser_session is not None and browser_session.user_id is not None:
        await end_sessions(session=session, user_id=browser_session.user_id)
    response = RedirectResponse(_install_path(app_id, next_), status_code=303)
    clear_session(response, secure=is_https(request, public_base_url=settings.public_base_url))
    return response


def _app_user_input(
    app: App, first_name: str | None, last_name: str | None, alias: str | None
) -> AppUserInput:
    """Form values; a field left empty keeps the app's default only when there is none to show."""

    def value(given: str | None, default: str | None) -> str | None:
        if given is None or (not given.strip() and default is None):
            return None
        return given

    return AppUserInput(
        first_name=value(first_name, app.app_user_default_first_name),
        last_name=value(last_name, app.app_user_default_last_name),
        alias=value(alias, app.app_user_default_alias),
    )


@router.post("/{app_id}/install", response_class=HTMLResponse)
async def install(
    request: Request,
    session: SessionDep,
    app_id: str,
    csrf: CsrfField = None,
    next: FormField = None,
    first_name: FormField = None,
    last_name: FormField = None,
    alias: FormField = None,
) -> Response:
    """Install, then redirect to the app's install trigger or to `next`."""
    next_ = _safe_next(request, next)
    if next_ is None:
        return _bad_next(request)
    app_uuid = _parse_app_id(app_id)
    if app_uuid is None:
        return _unknown_app(request, next_)
    settings = _settings(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    if not csrf_valid(browser_session, csrf, secret_key=settings.secret_key):
        return _csrf_failed(request, app_id, next_)
    assert browser_session is not None
    logged_in = await service.session_user(session=session, browser_session=browser_session)
    if logged_in is None:
        # Logged out (or the account changed) meanwhile: the install page asks to log in.
        return RedirectResponse(_install_path(app_id, next_), status_code=303)
    chrome = _chrome(request, logged_in, browser_session, app_id, next_)
    app = await _installable(
        request, session=session, logged_in=logged_in, app_uuid=app_uuid, next_=next_, chrome=chrome
    )
    if isinstance(app, Response):
        return app
    # Plain values first: the page re-rendered after a refused install must not touch expired rows.
    app_view = service.app_view(app)
    app_user_form = {"first_name": first_name, "last_name": last_name, "alias": alias}
    app_user = _app_user_input(app, first_name, last_name, alias) if app.is_app_user_required else None
    organization_name = logged_in.organization.name
    try:
        installation = await install_app(
            session=session,
            organization=logged_in.organization,
            app=app,
            actor=logged_in.user,
            granter=Principal(user=logged_in.user, organization=logged_in.organization),
            app_user=app_user,
        )
    except Conflict:
        return _already_installed(request, app_view["name"], organization_name, next_, chrome)
    except Forbidden as exc:
        return _error_page(request, 403, "Cannot install", exc.detail, back_url=next_, **chrome)
    except NotFound:
        return _unknown_app(request, next_, **chrome)
    except BadRequest as exc:
        return _confirm_page(
            request,
            app_view=app_view,
            app_user=app_user_form,
            chrome=chrome,
            status_code=400,
            error="The app could not be installed: correct the fields below.",
            errors=exc.errors or {"": [exc.detail]},
        )
    except APIError as exc:  # pragma: no cover - install_app documents only the four above
        return _error_page(request, exc.status_code, "Cannot install", exc.detail, back_url=next_, **chrome)
    if service.has_install_trigger(app):
        location = await service.trigger_redirect(
            session=session,
            settings=settings,
            type_="install",
            app=app,
            installation=installation,
            actor=logged_in.user,
            redirect_uri=service.absolute_url(
                next_, request_base_url=str(request.base_url), settings=settings
            ),
        )
        return RedirectResponse(location, status_code=303)
    return RedirectResponse(next_, status_code=303)
