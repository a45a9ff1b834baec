"""The console's assets, its home, and signing in and out (the install flow's accounts, throttle
and session: `web.signin`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query
from fastapi.responses import FileResponse, Response

from apps_api.console.render import HOME, console_next, error_page, login_page, page_router, redirect
from apps_api.kit.db import SessionDep
from apps_api.web.accounts import session_user
from apps_api.web.browser import BrowserDep
from apps_api.web.pages import static_file
from apps_api.web.routes import PageError
from apps_api.web.signin import Outcome, sign_in, sign_out, signed_in_redirect

router = page_router()

FormField = Annotated[str, Form()]


@router.get("/_static/console.css")
async def stylesheet() -> FileResponse:
    return static_file("console.css", "text/css")


@router.get("/_static/console.js")
async def script() -> FileResponse:
    return static_file("console.js", "text/javascript")


@router.get("")
@router.get("/")
async def home() -> Response:
    return redirect(HOME)


@router.get("/login")
async def login_form(
    session: SessionDep, browser: BrowserDep, next: Annotated[str | None, Query()] = None
) -> Response:
    """The sign-in page (the install flow's accounts and session); signed in: on to `next`."""
    next_ = console_next(browser, next)
    logged_in = await session_user(session=session, browser_session=browser.session, require_settings=False)
    if logged_in is not None:
        return redirect(next_)
    return login_page(browser, next_=next_)


@router.post("/login")
async def login(
    session: SessionDep,
    browser: BrowserDep,
    csrf_token: FormField = "",
    next: FormField = "",
    email: FormField = "",
    password: FormField = "",
) -> Response:
    next_ = console_next(browser, next)
    if not browser.csrf_valid(csrf_token):
        return login_page(browser, next_=next_, status_code=403, error="The form expired. Sign in again.")
    # The install flow's own sign-in, throttle included (tests/console/test_console.py).
    result = await sign_in(browser, session=session, email=email, password=password, require_settings=False)
    if result.outcome is Outcome.BUSY:
        raise PageError(
            503,
            "Too many sign-ins are being checked right now. Please retry.",
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.outcome is Outcome.LOCKED:
        error = f"Too many failed sign-ins for this account or from this network: try again in {result.wait}."
        locked = login_page(browser, next_=next_, status_code=429, error=error, email=email)
        locked.headers["Retry-After"] = str(result.retry_after)
        return locked
    if result.logged_in is None:
        error = "Those credentials do not work here. Check the email and password."
        return login_page(browser, next_=next_, status_code=400, error=error, email=email)
    return signed_in_redirect(browser, result.logged_in, next_)


@router.post("/logout")
async def logout(session: SessionDep, browser: BrowserDep, csrf_token: FormField = "") -> Response:
    """End the user's sessions, in every browser (the install flow's too: it is the same one)."""
    if not browser.csrf_valid(csrf_token):
        return error_page(
            browser.request, 403, "The form expired. Nothing was changed.", title="Form expired"
        )
    return await sign_out(browser, session=session, location="/console/login")
