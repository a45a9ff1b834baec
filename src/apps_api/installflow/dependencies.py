"""What every request of the install flow checks first, in this order: `next` (a 400 page), the
app id of the path (a 404 page), and for a form, its CSRF token (a 403 page); then, once signed
in, whether the organization may install the app (`installable`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Form, Query
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.installations.service import find_installable_app
from apps_api.installflow import pages, service
from apps_api.installflow.pages import Target
from apps_api.models import App
from apps_api.web.accounts import LoggedIn
from apps_api.web.browser import Browser, BrowserDep

FormField = Annotated[str | None, Form()]


def _target(browser: Browser, app_id: str, next_: str | None) -> Target:
    checked = browser.safe_next(next_)
    if checked is None:
        raise pages.bad_next()
    try:
        app_uuid = uuid.UUID(app_id)
    except ValueError:
        raise pages.unknown_app(checked) from None
    return Target(app_id=app_id, app_uuid=app_uuid, next=checked)


async def page_target(
    browser: BrowserDep, app_id: str, next: Annotated[str | None, Query(alias="next")] = None
) -> Target:
    """A page's app and `next` (from the query)."""
    return _target(browser, app_id, next)


async def form_target(
    browser: BrowserDep,
    app_id: str,
    next: FormField = None,
    csrf: Annotated[str | None, Form(alias="csrf_token")] = None,
) -> Target:
    """A form's app and `next`, posted with this session's CSRF token."""
    target = _target(browser, app_id, next)
    if not browser.csrf_valid(csrf):
        raise pages.form_expired(target)
    return target


PageTarget = Annotated[Target, Depends(page_target)]
FormTarget = Annotated[Target, Depends(form_target)]


async def installable(
    *, session: AsyncSession, logged_in: LoggedIn, target: Target, chrome: dict[str, Any]
) -> App:
    """The app, if this organization may install it and has not; else the page that says why."""
    organization = logged_in.organization
    if not organization.has_active_subscription():
        raise pages.no_subscription(organization, target, chrome)
    if not organization.has_feature("apps"):
        raise pages.apps_feature_missing(organization, target, chrome)
    app = await find_installable_app(session=session, organization_id=organization.id, app_id=target.app_uuid)
    if app is None:
        raise pages.unknown_app(target.next, chrome)
    if await service.is_installed(session=session, app_id=app.id, organization_id=organization.id):
        raise pages.already_installed(app.name, organization.name, target, chrome)
    return app
