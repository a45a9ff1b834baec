"""The provider's apps: list, create, overview (with the 24-hour chart), edit, delete, rotate the
secret; through `apps.service`, as the API's `/owned_apps` routes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from apps_api.apps import repository as apps_repository
from apps_api.apps import service as apps_service
from apps_api.apps.schemas import RotateSecretInput, owned_app_json
from apps_api.console import chart, forms, queries
from apps_api.console.dependencies import AppId, ConsoleApp, PostedForm, ProviderViewer, Viewer
from apps_api.console.listing import PagerDep
from apps_api.console.render import HOME, app_nav, notice, page, page_router, redirect
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import APIError, BadRequest, Conflict, NotFound, PaymentRequired
from apps_api.models import App
from apps_api.models.base import utcnow

router = page_router()

_BLANK_APP: dict[str, Any] = {
    **dict.fromkeys((*forms.APP_TEXT_FIELDS, *forms.APP_OPTIONAL_FIELDS), ""),
    **dict.fromkeys(forms.APP_FLAGS, False),
    "trigger_conditions": [],
    "required_scopes": [],
    "allowed_redirect_uris": [],
}


@router.get("/apps")
async def apps_list(
    request: Request, session: SessionDep, viewer: ProviderViewer, pager: PagerDep
) -> Response:
    """The organization's apps: one page query (the API's owned apps page plus the approval flag)."""
    apps = await pager.keyset(
        session,
        queries.OWNED_APPS_LIST,
        conditions=queries.OWNED_APPS_LIST_CONDITIONS,
        organization_id=viewer.principal.organization_id,
    )
    return page(
        request,
        "console/apps.html",
        viewer=viewer,
        title="Apps",
        section="apps",
        apps=apps.rows,
        notice=notice(request),
        **apps.links,
    )


def _app_form(
    request: Request,
    viewer: Viewer,
    *,
    values: dict[str, Any],
    app: App | None,
    errors: dict[str, list[str]] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "console/app_form.html",
        status_code=status_code,
        viewer=viewer,
        title=f"Edit {app.name}" if app is not None else "New app",
        section="apps",
        app=app_nav(app, "edit") if app is not None else None,
        values=values,
        errors=errors or {},
        error=error,
        choices=forms.APP_CHOICES,
        action=f"/console/apps/{app.id}/edit" if app is not None else "/console/apps",
    )


def _refused_app_form(
    request: Request, viewer: Viewer, form: FormData, exc: Exception, app: App | None
) -> Response:
    """The app form again, as posted, with what the API's schema or service said of it."""
    values = forms.app_values(form)
    if isinstance(exc, forms.FormErrors):
        return _app_form(request, viewer, values=values, app=app, errors=exc.errors, status_code=400)
    if isinstance(exc, BadRequest):
        errors = forms.api_errors(exc).errors
        return _app_form(request, viewer, values=values, app=app, errors=errors, status_code=400)
    assert isinstance(exc, APIError)
    return _app_form(request, viewer, values=values, app=app, error=exc.detail, status_code=exc.status_code)


@router.get("/apps/new")
async def app_new(request: Request, viewer: ProviderViewer) -> Response:
    return _app_form(request, viewer, values=_BLANK_APP, app=None)


@router.post("/apps")
async def app_create(
    request: Request, session: SessionDep, form: PostedForm, viewer: ProviderViewer
) -> Response:
    """`POST /owned_apps` through `apps.service.create_app`; refused: the form with the API's messages."""
    try:
        _, data = forms.app_input(form)
        view = await apps_service.create_app(db=session, principal=viewer.principal, data=data)
    except (forms.FormErrors, BadRequest, PaymentRequired, Conflict) as exc:
        return _refused_app_form(request, viewer, form, exc, None)
    return redirect(f"/console/apps/{view['id']}", "app-created")


@router.get("/apps/{app_id}")
async def app_overview(
    request: Request, session: SessionDep, viewer: ProviderViewer, app_id: AppId
) -> Response:
    """The app: its attributes, the secret (revealed on demand) and the 24-hour chart."""
    rows = await apps_repository.OWNED_APP.fetch(
        session, organization_id=viewer.principal.organization_id, app_id=app_id
    )
    if not rows:
        raise NotFound("No owned app found with the given ID.")
    view = owned_app_json(rows[0])
    approved = (await queries.APP_APPROVED.fetch(session, app_id=app_id))[0]["is_approved"]
    now = utcnow()
    hours = chart.hours_of(await queries.hourly_attempts(session, app_id=app_id, now=now), now=now)
    return page(
        request,
        "console/app.html",
        viewer=viewer,
        title=view["name"],
        section="apps",
        app=app_nav(_Named(app_id, view["name"]), "overview"),
        view=view,
        is_approved=approved,
        chart=chart.build(hours),
        notice=notice(request),
    )


class _Named:
    def __init__(self, id_: uuid.UUID, name: str) -> None:
        self.id, self.name = id_, name


@router.get("/apps/{app_id}/edit")
async def app_edit(request: Request, viewer: ProviderViewer, app: ConsoleApp) -> Response:
    return _app_form(request, viewer, values=forms.app_form_values(app), app=app)


@router.post("/apps/{app_id}/edit")
async def app_update(
    request: Request, session: SessionDep, form: PostedForm, viewer: ProviderViewer, app: ConsoleApp
) -> Response:
    """`PUT /owned_apps/{id}` through `apps.service.update_app` (narrowing publicity uninstalls)."""
    try:
        _, data = forms.app_input(form)
        await apps_service.update_app(
            session=session, principal=viewer.principal, app=app, data=data, partial=False
        )
    except (forms.FormErrors, BadRequest, PaymentRequired) as exc:
        return _refused_app_form(request, viewer, form, exc, app)
    return redirect(f"/console/apps/{app.id}", "app-saved")


@router.get("/apps/{app_id}/delete")
async def app_delete_confirm(request: Request, viewer: ProviderViewer, app: ConsoleApp) -> Response:
    return page(
        request,
        "console/app_delete.html",
        viewer=viewer,
        title=f"Delete {app.name}",
        section="apps",
        app=app_nav(app, "overview"),
        installation_count=app.installation_count,
    )


@router.post("/apps/{app_id}/delete")
async def app_delete(session: SessionDep, viewer: ProviderViewer, app: ConsoleApp) -> Response:
    """`DELETE /owned_apps/{id}`: uninstalled everywhere (with uninstall triggers), then deleted."""
    await apps_service.delete_app(session=session, principal=viewer.principal, app=app)
    return redirect(HOME, "app-deleted")


@router.post("/apps/{app_id}/secret/rotate")
async def app_secret_rotate(
    session: SessionDep, form: PostedForm, viewer: ProviderViewer, app: ConsoleApp
) -> Response:
    """`POST /owned_apps/{id}/rotate_secret`: the same input schema and service as the API."""
    grace = RotateSecretInput.model_validate(
        {"grace_period_seconds": forms.field(form, "grace_period_seconds")}
    )
    await apps_service.rotate_secret(
        session=session, principal=viewer.principal, app=app, grace_period_seconds=grace.grace_period_seconds
    )
    return redirect(f"/console/apps/{app.id}", "secret-rotated")
