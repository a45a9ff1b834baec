"""The installing organization's side: its installed apps (uninstall, and the console's triggers:
`setup`, `manual_nav`, `manual_dialog`), and the catalogue of apps it may install, linking to the
install flow."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from apps_api.apps import repository as apps_repository
from apps_api.catalog import repository as catalog_repository
from apps_api.console import forms, queries
from apps_api.console.dependencies import InstalledApp, PostedForm, SettingsViewer
from apps_api.console.listing import PagerDep
from apps_api.console.render import notice, page, page_router, redirect
from apps_api.delivery.triggers.location import installed_app_page
from apps_api.installations import repository as installations_repository
from apps_api.installations import service as installations_service
from apps_api.installflow import service as installflow
from apps_api.kit.db import SessionDep
from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import BadRequest
from apps_api.models import App, AppInstallation

router = page_router()

# The trigger conditions the console fires (docs/install-flow.md).
CONSOLE_TRIGGERS = ("setup", "manual_nav", "manual_dialog")


def _console_triggers(app: App) -> list[str]:
    """The console's trigger conditions the app has (none without an http(s) trigger_url)."""
    if _origin(app.trigger_url) == "":
        return []
    return [condition for condition in CONSOLE_TRIGGERS if condition in app.trigger_conditions]


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


@router.get("/installed")
async def installed(
    request: Request, session: SessionDep, viewer: SettingsViewer, pager: PagerDep
) -> Response:
    """Apps installed in the viewer's organization: the API's app installations page."""
    listed = await pager.entities(
        session,
        installations_repository.organization_installations(organization_id=viewer.principal.organization_id),
        created_at=AppInstallation.created_at,
        id_=AppInstallation.id,
        options=installations_service.installation_options(),
    )
    return page(
        request,
        "console/installed.html",
        viewer=viewer,
        title="Installed apps",
        section="installed",
        installations=listed.rows,
        actions={inst.id: _console_triggers(inst.app) for inst in listed.rows},
        trigger_origins=[
            _origin(inst.app.trigger_url) for inst in listed.rows if _console_triggers(inst.app)
        ],
        notice=notice(request),
        **listed.links,
    )


@router.post("/installed/{installation_id}/trigger")
async def installed_trigger(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: PostedForm,
    viewer: SettingsViewer,
    installation: InstalledApp,
) -> Response:
    """`setup`, `manual_nav` or `manual_dialog`: 303 to the app's trigger_url, as the install flow's
    trigger redirect (type, data, token, redirect_uri back to this page)."""
    type_ = forms.field(form, "type")
    if type_ not in _console_triggers(installation.app):
        raise BadRequest(f"The app has no {type_ or 'such'} trigger.")
    location = await installflow.trigger_redirect(
        session=session,
        settings=settings,
        type_=type_,
        app=installation.app,
        installation=installation,
        actor=viewer.user,
        redirect_uri=installed_app_page(
            base_url=settings.public_base_url or str(request.base_url), installation_id=installation.id
        ),
    )
    return RedirectResponse(location, status_code=303)


@router.post("/installed/{installation_id}/uninstall")
async def installed_uninstall(
    session: SessionDep, viewer: SettingsViewer, installation: InstalledApp
) -> Response:
    """`DELETE /app_installations/{id}` through `installations.service.uninstall`."""
    await installations_service.uninstall(
        session=session, installation=installation, actor_user_id=viewer.principal.user_id
    )
    return redirect("/console/installed", "uninstalled")


@router.get("/install")
async def install_catalogue(
    request: Request,
    session: SessionDep,
    viewer: SettingsViewer,
    pager: PagerDep,
    source: Annotated[str, Query(pattern="^(partner|public)$")] = "partner",
) -> Response:
    """Partner or public apps the organization may install, linking to the install flow."""
    organization_id = viewer.principal.organization_id
    statement = (
        apps_repository.partner_apps(organization_id=organization_id)
        if source == "partner"
        else apps_repository.public_apps()
    )
    listed = await pager.entities(
        session,
        statement,
        created_at=App.created_at,
        id_=App.id,
        options=catalog_repository.app_view_options(),
    )
    return page(
        request,
        "console/install.html",
        viewer=viewer,
        title="Install an app",
        section="install",
        source=source,
        apps=listed.rows,
        installed_ids=await queries.installed_app_ids(
            session, organization_id=organization_id, app_ids=[app.id for app in listed.rows]
        ),
        **listed.links,
    )
