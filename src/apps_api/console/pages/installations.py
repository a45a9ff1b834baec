"""The installations of an app (the provider's view): the list with token counts, one installation
with its app user's tokens (mint, revoke), and the owner's uninstall; through
`app_user_tokens.service` and `installations.service`, as the API's routes."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.app_user_tokens import service as app_user_tokens
from apps_api.console import forms, queries
from apps_api.console.dependencies import (
    ConsoleApp,
    ConsoleInstallation,
    PostedForm,
    ProviderViewer,
    TokenId,
    Viewer,
)
from apps_api.console.listing import PagerDep
from apps_api.console.render import app_nav, notice, page, page_router, redirect
from apps_api.installations import repository as installations_repository
from apps_api.installations import service as installations_service
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import BadRequest
from apps_api.models import App, AppInstallation

router = page_router()


@router.get("/apps/{app_id}/installations")
async def installations(
    request: Request, session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, pager: PagerDep
) -> Response:
    """The API's owned app installations page (embedded objects joined) and one token count query."""
    listed = await pager.entities(
        session,
        installations_repository.app_installations(app_id=app.id),
        created_at=AppInstallation.created_at,
        id_=AppInstallation.id,
        options=installations_service.installation_options(),
    )
    return page(
        request,
        "console/installations.html",
        viewer=viewer,
        title="Installations",
        section="apps",
        app=app_nav(app, "installations"),
        installations=listed.rows,
        token_counts=await queries.token_counts(session, [item.id for item in listed.rows]),
        notice=notice(request),
        **listed.links,
    )


async def _installation_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    app: App,
    installation: AppInstallation,
    *,
    new_token: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "console/installation.html",
        status_code=status_code,
        viewer=viewer,
        title=f"{app.name} in {installation.organization.name}",
        section="apps",
        app=app_nav(app, "installations"),
        installation=installation,
        tokens=await queries.installation_tokens(session, installation=installation),
        new_token=new_token,
        errors=errors or {},
        notice=notice(request),
    )


@router.get("/apps/{app_id}/installations/{installation_id}")
async def installation_detail(
    request: Request,
    session: SessionDep,
    viewer: ProviderViewer,
    app: ConsoleApp,
    installation: ConsoleInstallation,
) -> Response:
    return await _installation_page(request, session, viewer, app, installation)


@router.post("/apps/{app_id}/installations/{installation_id}/tokens")
async def token_mint(
    request: Request,
    session: SessionDep,
    form: PostedForm,
    viewer: ProviderViewer,
    app: ConsoleApp,
    installation: ConsoleInstallation,
) -> Response:
    """`POST .../app_user_tokens`: the key is on this answer's page only (never stored, never again)."""
    try:
        expires_at = forms.utc_input(forms.field(form, "expires_at"))
    except ValueError:
        errors = {"expires_at": ["Enter a date and time (YYYY-MM-DDTHH:MM, UTC)."]}
        return await _installation_page(
            request, session, viewer, app, installation, errors=errors, status_code=400
        )
    try:
        token, key = await app_user_tokens.mint(
            session=session, installation=installation, expires_at=expires_at
        )
    except BadRequest as exc:
        errors = forms.api_errors(exc).errors
        return await _installation_page(
            request, session, viewer, app, installation, errors=errors, status_code=400
        )
    new_token = {"id": str(token.id), "key": key, "expires_at": token.expires_at}
    return await _installation_page(request, session, viewer, app, installation, new_token=new_token)


@router.post("/apps/{app_id}/installations/{installation_id}/tokens/{token_id}/revoke")
async def token_revoke(
    session: SessionDep, app: ConsoleApp, installation: ConsoleInstallation, token_id: TokenId
) -> Response:
    """`DELETE .../app_user_tokens/{id}`."""
    await app_user_tokens.revoke(session=session, installation=installation, token_id=token_id)
    return redirect(f"/console/apps/{app.id}/installations/{installation.id}", "token-revoked")


@router.post("/apps/{app_id}/installations/{installation_id}/uninstall")
async def owner_uninstall(
    session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, installation: ConsoleInstallation
) -> Response:
    """The spec's owner DELETE `/owned_apps/{id}/installations/{organization_id}`."""
    await installations_service.uninstall(
        session=session, installation=installation, actor_user_id=viewer.principal.user_id
    )
    return redirect(f"/console/apps/{app.id}/installations", "uninstalled")
