"""Signing in and out of the browser pages, once for the install flow and the console: the outcome
of a sign-in form (each page words it its own way), the cookies of a signed-in browser, and a
sign-out that ends every session of the user."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import HashingBusy
from apps_api.kit.throttle import ThrottleUnavailable
from apps_api.platform.service import end_sessions
from apps_api.web.accounts import LoggedIn, throttled_login
from apps_api.web.browser import Browser
from apps_api.web.session import clear_session, set_sign_in_cookies

# How long a browser is asked to wait when every password check slot (or the throttle) is busy.
BUSY_RETRY_SECONDS = 5


class Outcome(enum.Enum):
    SIGNED_IN = "signed in"
    BAD_CREDENTIALS = "bad credentials"
    LOCKED = "locked"  # the throttle refused: too many failures for the account or address
    BUSY = "busy"  # no password check slot, or the throttle unreachable: retry soon


@dataclass(frozen=True)
class SignIn:
    outcome: Outcome
    logged_in: LoggedIn | None = None
    retry_after: int = 0  # seconds (LOCKED, BUSY)

    @property
    def wait(self) -> str:
        """The lock's time left in whole minutes, for people: `1 minute`, `15 minutes`."""
        minutes = max(1, -(-self.retry_after // 60))
        return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def sign_in(
    browser: Browser, *, session: AsyncSession, email: str, password: str, require_settings: bool
) -> SignIn:
    """One throttled password check of a sign-in form (the form's CSRF token already checked)."""
    try:
        attempt = await throttled_login(
            session=session,
            redis=getattr(browser.request.app.state, "arq", None),
            email=email,
            password=password,
            client_host=browser.client_host,
            device=browser.device,
            require_settings=require_settings,
        )
    except (HashingBusy, ThrottleUnavailable):
        return SignIn(Outcome.BUSY, retry_after=BUSY_RETRY_SECONDS)
    if attempt.locked_seconds:
        return SignIn(Outcome.LOCKED, retry_after=attempt.locked_seconds)
    if attempt.logged_in is None:
        return SignIn(Outcome.BAD_CREDENTIALS)
    return SignIn(Outcome.SIGNED_IN, attempt.logged_in)


def signed_in_redirect(browser: Browser, logged_in: LoggedIn, location: str) -> RedirectResponse:
    """303 to `location` with a fresh signed-in session (a new id) and a new device cookie."""
    response = RedirectResponse(location, status_code=303)
    set_sign_in_cookies(
        response, logged_in.user, secret_key=browser.settings.secret_key, secure=browser.secure
    )
    return response


async def sign_out(browser: Browser, *, session: AsyncSession, location: str) -> RedirectResponse:
    """End the user's sessions, in every browser, then 303 to `location` (the form's CSRF token
    already checked)."""
    # Clearing the cookie is not enough: a copy of it (saved, stolen) must stop working too.
    if browser.session is not None and browser.session.user_id is not None:
        await end_sessions(session=session, user_id=browser.session.user_id)
    response = RedirectResponse(location, status_code=303)
    clear_session(response, secure=browser.secure)
    return response


def sign_in_page(browser: Browser, page: Callable[[str], HTMLResponse]) -> HTMLResponse:
    """A sign-in form, `page(csrf_token)`: its token bound to the pre-login session, which the answer
    keeps (or starts)."""
    anonymous = browser.anonymous()
    response = page(browser.csrf_token(anonymous))
    browser.write(response, anonymous)
    return response
