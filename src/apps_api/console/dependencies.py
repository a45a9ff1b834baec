"""The console's dependencies: who views (signed in, a POST's CSRF token, the API's access
checks), then what they view, loaded by the API's own loaders (a foreign resource: the same 404
as the API's). Routes declare what they need (`app: ConsoleApp`), in the API's order: signed in,
CSRF, access checks, loaders.

The console shares the install flow's sign-in: the same signed cookie (set for `/apps/` and
`/console/`), the same CSRF tokens bound to it. Who may do what is decided by the API's own check
functions (`auth.dependencies`) on a `Principal` of the signed-in user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from starlette.datastructures import FormData

from apps_api.app_user_tokens.dependencies import find_owned_installation
from apps_api.auth.dependencies import Writer, check_organization_provider, check_organization_settings
from apps_api.auth.service import Principal
from apps_api.catalog.dependencies import owned_app
from apps_api.installations import repository as installations_repository
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound
from apps_api.models import App, AppInstallation, Webhook, WebhookLogEntry
from apps_api.web.accounts import session_user
from apps_api.web.browser import BrowserDep
from apps_api.web.routes import PageError
from apps_api.web.session import BrowserSession
from apps_api.webhooks.dependencies import KeptSinceDep, load_owned_log_entry, load_owned_webhook

AppId = Annotated[uuid.UUID, Path()]
WebhookId = Annotated[uuid.UUID, Path()]
EntryId = Annotated[uuid.UUID, Path()]
InstallationId = Annotated[uuid.UUID, Path()]
TokenId = Annotated[uuid.UUID, Path()]
ShareId = Annotated[uuid.UUID, Path()]


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


def form_expired() -> PageError:
    return PageError(
        403,
        "The form was not sent from this site, or your session changed. Nothing was changed: "
        "open the page again and retry.",
    )


async def signed_in(request: Request, session: SessionDep, browser: BrowserDep) -> Viewer:
    """The live user of the session cookie as a `Principal` (kind user), else `LoginRequired`; a POST
    must carry a CSRF token of this very session (else a 403 page, before any access check).

    Built like the API's principal of a user's token: the user, their organization and their
    permissions; the checks below then decide as they do for the API.
    """
    logged_in = await session_user(session=session, browser_session=browser.session, require_settings=False)
    if logged_in is None or browser.session is None:
        raise LoginRequired
    viewer = Viewer(
        principal=Principal(user=logged_in.user, organization=logged_in.organization),
        browser_session=browser.session,
        csrf_token=browser.csrf_token(),
    )
    request.state.console_viewer = viewer
    if request.method == "POST":
        token = (await request.form()).get("csrf_token")
        if not browser.csrf_valid(token if isinstance(token, str) else None):
            raise form_expired()
    return viewer


SignedIn = Annotated[Viewer, Depends(signed_in)]


async def settings_viewer(viewer: SignedIn) -> Viewer:
    """The viewer as the API's `OrgSettingsReader` would admit them (403 pages)."""
    check_organization_settings(viewer.principal, viewer.principal.organization_id)
    return viewer


async def provider_viewer(viewer: SignedIn) -> Viewer:
    """The viewer as the API's `ProviderReader` would admit them: the provider's pages (owned
    apps and everything below them)."""
    check_organization_provider(viewer.principal, viewer.principal.organization_id)
    return viewer


SettingsViewer = Annotated[Viewer, Depends(settings_viewer)]
ProviderViewer = Annotated[Viewer, Depends(provider_viewer)]


async def posted_form(request: Request, viewer: SignedIn) -> FormData:
    """A state-changing POST's form (its CSRF token checked by `signed_in`)."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(posted_form)]


async def console_app(session: SessionDep, viewer: ProviderViewer, app_id: AppId) -> App:
    """The API's `owned_app` loader (another organization's app: 404)."""
    return await owned_app(Writer(viewer.principal, session), app_id)


ConsoleApp = Annotated[App, Depends(console_app)]


async def console_webhook(session: SessionDep, app: ConsoleApp, webhook_id: WebhookId) -> Webhook:
    return await load_owned_webhook(session=session, app_id=app.id, webhook_id=webhook_id)


async def console_log_entry(
    session: SessionDep, app: ConsoleApp, entry_id: EntryId, since: KeptSinceDep
) -> WebhookLogEntry:
    return await load_owned_log_entry(session=session, app_id=app.id, entry_id=entry_id, since=since)


async def console_installation(
    session: SessionDep, app: ConsoleApp, installation_id: InstallationId
) -> AppInstallation:
    """An installation of the viewer's app (the provider's view)."""
    return await find_owned_installation(session=session, app_id=app.id, installation_id=installation_id)


async def installed_app(
    session: SessionDep, viewer: SettingsViewer, installation_id: InstallationId
) -> AppInstallation:
    """An installation in the viewer's organization (the installer's view)."""
    installation = await installations_repository.get_organization_installation(
        session=session, organization_id=viewer.principal.organization_id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No app installation found with the given ID.")
    return installation


ConsoleWebhook = Annotated[Webhook, Depends(console_webhook)]
ConsoleLogEntry = Annotated[WebhookLogEntry, Depends(console_log_entry)]
ConsoleInstallation = Annotated[AppInstallation, Depends(console_installation)]
InstalledApp = Annotated[AppInstallation, Depends(installed_app)]
