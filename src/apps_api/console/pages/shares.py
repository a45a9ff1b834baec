"""An app's shares with partner organizations: list, add, remove; through `apps.service`, as the
API's `/owned_apps/{id}/shares` routes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.apps import repository as apps_repository
from apps_api.apps import service as apps_service
from apps_api.apps.schemas import AppShareInput
from apps_api.console import forms, queries
from apps_api.console.dependencies import ConsoleApp, PostedForm, ProviderViewer, ShareId, Viewer
from apps_api.console.listing import Pager, PagerDep
from apps_api.console.render import app_nav, notice, page, page_router, redirect
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import BadRequest, Conflict
from apps_api.models import App, AppShare

router = page_router()


async def _shares_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    app: App,
    pager: Pager,
    *,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    shares = await pager.entities(
        session,
        apps_repository.app_shares(app_id=app.id),
        created_at=AppShare.created_at,
        id_=AppShare.id,
        options=apps_repository.app_share_options(),
    )
    partners = await queries.partner_organizations(session, organization_id=viewer.principal.organization_id)
    return page(
        request,
        "console/shares.html",
        status_code=status_code,
        viewer=viewer,
        title="Shares",
        section="apps",
        app=app_nav(app, "shares"),
        shares=shares.rows,
        partners=partners,
        errors=errors or {},
        notice=notice(request),
        **shares.links,
    )


@router.get("/apps/{app_id}/shares")
async def shares(
    request: Request, session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, pager: PagerDep
) -> Response:
    return await _shares_page(request, session, viewer, app, pager)


@router.post("/apps/{app_id}/shares")
async def share_add(
    request: Request, session: SessionDep, form: PostedForm, viewer: ProviderViewer, app: ConsoleApp
) -> Response:
    """`POST /owned_apps/{id}/shares` through `apps.service.create_share`."""
    try:
        data = forms.validated(AppShareInput, {"organization_id": forms.field(form, "organization_id")})
        await apps_service.create_share(session=session, principal=viewer.principal, app=app, data=data)
    except (forms.FormErrors, BadRequest) as exc:
        errors = forms.form_errors(exc)
        return await _shares_page(
            request, session, viewer, app, Pager(request, None), errors=errors, status_code=400
        )
    except Conflict as exc:
        errors = {"organization_id": [exc.detail]}
        return await _shares_page(
            request, session, viewer, app, Pager(request, None), errors=errors, status_code=409
        )
    return redirect(f"/console/apps/{app.id}/shares", "share-added")


@router.post("/apps/{app_id}/shares/{share_id}/remove")
async def share_remove(
    session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, share_id: ShareId
) -> Response:
    """`DELETE /owned_apps/{id}/shares/{share_id}`: the partner loses the app unless still allowed."""
    await apps_service.delete_share(session=session, principal=viewer.principal, app=app, share_id=share_id)
    return redirect(f"/console/apps/{app.id}/shares", "share-removed")
