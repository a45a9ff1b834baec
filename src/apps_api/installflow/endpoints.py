"""`/apps/{app_id}/install`: the browser flow that installs an app (docs/design.md section 7).

Server-rendered pages (no JavaScript): login when there is no session, then a confirmation
page; every POST carries a CSRF token bound to the session. These routes are for browsers,
not API clients, so they are left out of the OpenAPI schema (docs/install-flow.md documents them).
Every refusal is an error page raised as a `PageError` (`pages`), which the route class renders.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.service import Principal
from apps_api.installations.service import AppUserInput, install_app
from apps_api.installflow import pages, service
from apps_api.installflow.dependencies import FormField, FormTarget, PageTarget, installable
from apps_api.installflow.pages import InstallFlowRoute, Target
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import APIError, BadRequest, Conflict, NotFound
from apps_api.models import App, AppInstallation
from apps_api.web.accounts import LoggedIn, session_user
from apps_api.web.browser import BrowserDep
from apps_api.web.pages import static_file
from apps_api.web.signin import Outcome, sign_in, sign_out, signed_in_redirect

router = APIRouter(prefix="/apps", include_in_schema=False, route_class=InstallFlowRoute)


@router.get("/_static/install.css")
async def stylesheet() -> FileResponse:
    return static_file("install.css", "text/css")


@router.get("/{app_id}/install", response_class=HTMLResponse)
async def install_page(session: SessionDep, browser: BrowserDep, target: PageTarget) -> Response:
    """Login page without a session; otherwise the confirmation page."""
    logged_in = await session_user(session=session, browser_session=browser.session)
    if logged_in is None:
        return pages.login_page(browser, target)
    chrome = pages.chrome(browser, logged_in, target)
    app = await installable(session=session, logged_in=logged_in, target=target, chrome=chrome)
    return pages.confirm_page(
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
    session: SessionDep,
    browser: BrowserDep,
    target: FormTarget,
    email: FormField = None,
    password: FormField = None,
) -> Response:
    """Check the credentials; on success start a fresh logged-in session and go to the install page."""
    result = await sign_in(
        browser, session=session, email=email or "", password=password or "", require_settings=True
    )
    if result.outcome is Outcome.BUSY:
        raise pages.sign_in_busy(target, result.retry_after)
    if result.outcome is Outcome.LOCKED:
        locked = pages.login_page(
            browser,
            target,
            status_code=429,
            error=(
                "Too many failed logins for this account or from this network. For your safety, "
                f"logging in is paused: try again in {result.wait}."
            ),
        )
        locked.headers["Retry-After"] = str(result.retry_after)
        return locked
    if result.logged_in is None:
        return pages.login_page(
            browser,
            target,
            status_code=400,
            error=(
                "Those credentials do not work here. Check the email and password; the account "
                "must also have the settings permission to install apps (your administrator can grant it)."
            ),
            email=email,
        )
    return signed_in_redirect(browser, result.logged_in, target.install_path)


@router.post("/{app_id}/install/logout", response_class=HTMLResponse)
async def logout(session: SessionDep, browser: BrowserDep, target: FormTarget) -> Response:
    """End the user's sessions (this browser's and any other) and go back to the install page."""
    return await sign_out(browser, session=session, location=target.install_path)


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


async def _install(
    *,
    session: AsyncSession,
    app: App,
    logged_in: LoggedIn,
    app_user: AppUserInput | None,
    target: Target,
    chrome: dict[str, Any],
) -> AppInstallation:
    """`installations.service.install_app`; its refusals are the flow's error pages, but for a
    refused form (BadRequest), which the confirmation page shows."""
    # Plain values first: a page after a refused install must not touch expired rows.
    app_name, organization_name = app.name, logged_in.organization.name
    try:
        return await install_app(
            session=session,
            organization=logged_in.organization,
            app=app,
            actor=logged_in.user,
            granter=Principal(user=logged_in.user, organization=logged_in.organization),
            app_user=app_user,
        )
    except Conflict:
        raise pages.already_installed(app_name, organization_name, target, chrome) from None
    except NotFound:
        raise pages.unknown_app(target.next, chrome) from None
    except BadRequest:
        raise
    except APIError as exc:  # Forbidden: install_app documents no other refusal
        raise pages.cannot_install(exc.status_code, exc.detail, target, chrome) from None


@router.post("/{app_id}/install", response_class=HTMLResponse)
async def install(
    session: SessionDep,
    browser: BrowserDep,
    target: FormTarget,
    first_name: FormField = None,
    last_name: FormField = None,
    alias: FormField = None,
) -> Response:
    """Install, then redirect to the app's install trigger or to `next`."""
    logged_in = await session_user(session=session, browser_session=browser.session)
    if logged_in is None:
        # Logged out (or the account changed) meanwhile: the install page asks to log in.
        return RedirectResponse(target.install_path, status_code=303)
    chrome = pages.chrome(browser, logged_in, target)
    app = await installable(session=session, logged_in=logged_in, target=target, chrome=chrome)
    # Plain values first: the page re-rendered after a refused install must not touch expired rows.
    app_view = service.app_view(app)
    app_user = _app_user_input(app, first_name, last_name, alias) if app.is_app_user_required else None
    try:
        installation = await _install(
            session=session, app=app, logged_in=logged_in, app_user=app_user, target=target, chrome=chrome
        )
    except BadRequest as exc:
        return pages.confirm_page(
            app_view=app_view,
            app_user={"first_name": first_name, "last_name": last_name, "alias": alias},
            chrome=chrome,
            status_code=400,
            error="The app could not be installed: correct the fields below.",
            errors=exc.errors or {"": [exc.detail]},
        )
    if not service.has_install_trigger(app):
        return RedirectResponse(target.next, status_code=303)
    location = await service.trigger_redirect(
        session=session,
        settings=browser.settings,
        type_="install",
        app=app,
        installation=installation,
        actor=logged_in.user,
        redirect_uri=browser.absolute_url(target.next),
    )
    return RedirectResponse(location, status_code=303)
