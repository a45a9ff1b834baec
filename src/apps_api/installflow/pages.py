"""The install flow's pages: the sign-in form, the confirmation page and the error pages (each a
`PageError` raised anywhere under `InstallFlowRoute`), rendered by the browser layer (`web`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from apps_api.models import Organization
from apps_api.web.accounts import LoggedIn
from apps_api.web.browser import Browser
from apps_api.web.pages import INSTALL_FLOW_CSP, render
from apps_api.web.routes import PageError, PageRoute
from apps_api.web.signin import sign_in_page

STYLESHEET_URL = "/apps/_static/install.css"

_FIELD_LABELS = {
    "app_user.first_name": "First name",
    "app_user.last_name": "Last name",
    "app_user.alias": "Alias",
    "allowed_scopes": "Scopes",
}


@dataclass(frozen=True)
class Target:
    """What a request of the flow is about: the app of its path (as given, and parsed) and the
    checked `next` the browser goes back to."""

    app_id: str
    app_uuid: uuid.UUID
    next: str

    @property
    def install_path(self) -> str:
        return f"/apps/{self.app_id}/install?{urlencode({'next': self.next})}"


def page(
    template: str, *, status_code: int = 200, origins: Iterable[str] = (), **context: Any
) -> HTMLResponse:
    """A page of the flow: no script, forms only to this site (and `origins`)."""
    context.setdefault("title", "Install an app")
    context.setdefault("current_user", None)
    context.setdefault("stylesheet_url", STYLESHEET_URL)
    return render(template, csp=INSTALL_FLOW_CSP, origins=origins, status_code=status_code, **context)


class InstallFlowRoute(PageRoute):
    """Every error of the flow is its error page (with a way back); other failures are the API's."""

    def error_page(self, request: Request, error: PageError) -> Response:
        context = {"back_url": None, "back_label": None, **error.context}
        return page(
            "error.html", status_code=error.status_code, title=error.title, message=error.message, **context
        )


def chrome(browser: Browser, logged_in: LoggedIn, target: Target) -> dict[str, Any]:
    """What every signed-in page shows: who is signed in and the logout form."""
    return {
        "current_user": logged_in.user,
        "current_organization": logged_in.organization,
        "csrf_token": browser.csrf_token(),
        "logout_url": f"/apps/{target.app_id}/install/logout",
        "next": target.next,
    }


def login_page(
    browser: Browser,
    target: Target,
    *,
    status_code: int = 200,
    error: str | None = None,
    email: str | None = None,
) -> HTMLResponse:
    return sign_in_page(
        browser,
        lambda token: page(
            "login.html",
            status_code=status_code,
            title="Log in",
            csrf_token=token,
            next=target.next,
            login_url=f"/apps/{target.app_id}/install/login",
            error=error,
            email=email,
        ),
    )


def confirm_page(
    *,
    app_view: dict[str, Any],
    app_user: dict[str, str | None],
    chrome: dict[str, Any],
    status_code: int = 200,
    error: str | None = None,
    errors: dict[str, list[str]] | None = None,
) -> HTMLResponse:
    origin = app_view.get("trigger_origin")
    return page(
        "confirm.html",
        status_code=status_code,
        origins=(origin,) if origin else (),
        title=f"Install {app_view['name']}",
        app=app_view,
        app_user=app_user,
        install_url=f"/apps/{app_view['id']}/install",
        error=error,
        errors={_FIELD_LABELS.get(key, key): value for key, value in (errors or {}).items()},
        **chrome,
    )


# --- the error pages ---------------------------------------------------------------------------


def bad_next() -> PageError:
    return PageError(
        400,
        "The link that brought you here asks to send you on to an address outside this site "
        "(or one that is malformed). For your safety it is not followed: `next` must be a path "
        "on this site, such as /settings/apps.",
        title="Invalid return address",
    )


def unknown_app(next_: str, chrome: dict[str, Any] | None = None) -> PageError:
    return PageError(
        404,
        "This app does not exist or cannot be installed by your organization.",
        title="App not available",
        back_url=next_,
        **(chrome or {}),
    )


def form_expired(target: Target) -> PageError:
    return PageError(
        403,
        "The form was not sent from this page, or your session expired. Nothing was changed; "
        "open the install page again and retry.",
        title="Form expired",
        back_url=target.install_path,
        back_label="Back to the install page",
    )


def sign_in_busy(target: Target, retry_after: int) -> PageError:
    return PageError(
        503,
        "Too many logins are being checked right now. Nothing was changed; please retry.",
        title="Try again in a moment",
        headers={"Retry-After": str(retry_after)},
        back_url=target.install_path,
        back_label="Back to the install page",
    )


def cannot_install(status_code: int, message: str, target: Target, chrome: dict[str, Any]) -> PageError:
    return PageError(status_code, message, title="Cannot install", back_url=target.next, **chrome)


def no_subscription(organization: Organization, target: Target, chrome: dict[str, Any]) -> PageError:
    return PageError(
        403,
        f"{organization.name} does not have an active subscription, so it cannot install apps. "
        "The operator of this service can renew it (ask your administrator).",
        title="No active subscription",
        back_url=target.next,
        **chrome,
    )


def apps_feature_missing(organization: Organization, target: Target, chrome: dict[str, Any]) -> PageError:
    return PageError(
        403,
        f"{organization.name} does not have the Apps feature, so it cannot install apps. "
        "The operator of this service can enable it (ask your administrator).",
        title="Apps feature missing",
        back_url=target.next,
        **chrome,
    )


def already_installed(
    app_name: str, organization_name: str, target: Target, chrome: dict[str, Any]
) -> PageError:
    return PageError(
        409,
        f"{app_name} is already installed in {organization_name}.",
        title="Already installed",
        back_url=target.next,
        back_label="Continue",
        **chrome,
    )
