"""`/console/`: the developer console's pages (server-rendered, not in OpenAPI; docs/console.md).

Every page first signs the viewer in (the install flow's session), then runs the API's access
checks (`web.provider_viewer` / `web.settings_viewer`), then loads resources with the API's own
loaders and changes them with the API's own services. Forms POST with the session's CSRF token
and answer with a redirect (Post/Redirect/Get), or with the form again and the API's messages.
"""

from __future__ import annotations

import re
import typing
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from apps_api.app_user_tokens import service as app_user_tokens
from apps_api.app_user_tokens.endpoints import owned_installation
from apps_api.apps import repository as apps_repository
from apps_api.apps import service as apps_service
from apps_api.apps.schemas import AppShareInput, RotateSecretInput, owned_app_json
from apps_api.catalog import repository as catalog_repository
from apps_api.catalog.dependencies import owned_app
from apps_api.console import chart, forms, queries
from apps_api.console.web import (
    HOME,
    STATIC,
    ConsoleRoute,
    Viewer,
    console_origin,
    error_page,
    field,
    login_page,
    parse_uuid,
    posted_form,
    provider_viewer,
    redirect,
    render,
    settings_of,
    settings_viewer,
)
from apps_api.delivery.triggers.location import installed_app_page
from apps_api.installations import repository as installations_repository
from apps_api.installations import service as installations_service
from apps_api.installflow import service as installflow
from apps_api.installflow.session import (
    clear_session,
    csrf_valid,
    is_https,
    read_device,
    read_session,
    safe_next,
    sign_in,
)
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import BadRequest, Conflict, NotFound, PaymentRequired
from apps_api.kit.pagination import PageParams, keyset_page, paginate
from apps_api.kit.schemas import bounded_utc
from apps_api.kit.security import HashingBusy
from apps_api.kit.throttle import ThrottleUnavailable
from apps_api.models import (
    ApiToken,
    App,
    AppInstallation,
    AppShare,
    OutboundDelivery,
    Webhook,
    WebhookLogEntry,
)
from apps_api.models.base import utcnow
from apps_api.models.webhook_log_entry import LOG_STATUSES
from apps_api.platform.service import end_sessions
from apps_api.webhooks import catalogue, channel_registry
from apps_api.webhooks import repository as webhooks_repository
from apps_api.webhooks import schemas as webhook_schemas
from apps_api.webhooks import service as webhooks_service
from apps_api.webhooks.endpoints import kept_since, owned_log_entry, owned_webhook

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

AppId = Annotated[uuid.UUID, Path()]
WebhookId = Annotated[uuid.UUID, Path()]
EntryId = Annotated[uuid.UUID, Path()]
InstallationId = Annotated[uuid.UUID, Path()]
TokenId = Annotated[uuid.UUID, Path()]
ShareId = Annotated[uuid.UUID, Path()]
Cursor = Annotated[str | None, Query(max_length=500)]
PAGE_SIZE = 25

NOTICES = {
    "app-created": "App created.",
    "app-saved": "App saved.",
    "app-deleted": "App deleted and uninstalled everywhere.",
    "secret-rotated": "Secret rotated. Reveal it below; the previous one works until its grace period ends.",
    "webhook-created": "Webhook created.",
    "webhook-saved": "Webhook saved.",
    "webhook-deleted": "Webhook deleted.",
    "webhook-enabled": "Webhook re-enabled: new events reach it again.",
    "test-sent": "Test event scheduled: this is its first attempt.",
    "redelivered": "Redelivery scheduled: a new attempt appears at the top of the log.",
    "token-revoked": "Token revoked: it no longer works.",
    "uninstalled": "App uninstalled from the organization.",
    "share-added": "App shared.",
    "share-removed": "Share removed.",
}


def _notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("notice") or "")


def _without_notice(request: Request) -> Request:
    """The request for the pager's links: a one-time notice is not carried to the next page."""
    if "notice" not in request.query_params:
        return request
    query = urlencode([(key, value) for key, value in request.query_params.multi_items() if key != "notice"])
    return Request({**request.scope, "query_string": query.encode()})


def _page_params(cursor: str | None) -> PageParams:
    return PageParams(cursor=cursor or None, page_size=PAGE_SIZE, ordering="-created_at")


def _app_nav(app: Any, active: str) -> dict[str, Any]:
    return {"id": str(app.id), "name": app.name, "active": active}


async def _provider_app(request: Request, session: SessionDep, app_id: uuid.UUID) -> tuple[Viewer, App]:
    """The API's provider checks, then its `owned_app` loader (another organization's app: 404)."""
    viewer = await provider_viewer(request, session)
    return viewer, await owned_app(session, viewer.principal, app_id)


# --- static, sign-in -------------------------------------------------------------------------


@router.get("/_static/console.css")
async def stylesheet() -> FileResponse:
    return FileResponse(
        STATIC / "console.css", media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/_static/console.js")
async def script() -> FileResponse:
    return FileResponse(
        STATIC / "console.js",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("")
@router.get("/")
async def home() -> Response:
    return redirect(HOME)


@router.get("/login")
async def login_form(
    request: Request, session: SessionDep, next: Annotated[str | None, Query()] = None
) -> Response:
    """The sign-in page (the install flow's accounts and session); signed in: on to `next`."""
    next_ = _console_next(request, next)
    browser_session = read_session(request, secret_key=settings_of(request).secret_key)
    logged_in = await installflow.session_user(
        session=session, browser_session=browser_session, require_settings=False
    )
    if logged_in is not None:
        return redirect(next_)
    return login_page(request, next_=next_, browser_session=browser_session)


def _console_next(request: Request, value: str | None) -> str:
    """Only console pages are a place to go after signing in."""
    next_ = safe_next(value, origin=console_origin(request))
    return next_ if next_ is not None and next_.startswith("/console/") else HOME


@router.post("/login")
async def login(request: Request, session: SessionDep) -> Response:
    settings = settings_of(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    form = await request.form()
    next_ = _console_next(request, field(form, "next"))
    if not csrf_valid(browser_session, field(form, "csrf_token") or None, secret_key=settings.secret_key):
        return login_page(
            request,
            next_=next_,
            browser_session=browser_session,
            status_code=403,
            error="The form expired. Sign in again.",
        )
    email = field(form, "email")
    # The install flow's own sign-in, throttle included (tests/test_console.py).
    try:
        attempt = await installflow.throttled_login(
            session=session,
            redis=getattr(request.app.state, "arq", None),
            email=email,
            password=field(form, "password"),
            client_host=request.client.host if request.client else "unknown",
            device=read_device(request, secret_key=settings.secret_key),
            require_settings=False,
        )
    except (HashingBusy, ThrottleUnavailable):
        busy = error_page(request, 503, "Too many sign-ins are being checked right now. Please retry.")
        busy.headers["Retry-After"] = "5"
        return busy
    if attempt.locked_seconds:
        minutes = max(1, -(-attempt.locked_seconds // 60))
        locked = login_page(
            request,
            next_=next_,
            browser_session=browser_session,
            status_code=429,
            error=(
                "Too many failed sign-ins for this account or from this network: try again in "
                f"{minutes} minute{'s' if minutes != 1 else ''}."
            ),
            email=email,
        )
        locked.headers["Retry-After"] = str(attempt.locked_seconds)
        return locked
    logged_in = attempt.logged_in
    if logged_in is None:
        return login_page(
            request,
            next_=next_,
            browser_session=browser_session,
            status_code=400,
            error="Those credentials do not work here. Check the email and password.",
            email=email,
        )
    response = redirect(next_)
    sign_in(
        response,
        logged_in.user,
        secret_key=settings.secret_key,
        secure=is_https(request, public_base_url=settings.public_base_url),
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    """End the user's sessions, in every browser (the install flow's too: it is the same one)."""
    settings = settings_of(request)
    browser_session = read_session(request, secret_key=settings.secret_key)
    form = await request.form()
    if not csrf_valid(browser_session, field(form, "csrf_token") or None, secret_key=settings.secret_key):
        return error_page(request, 403, "The form expired. Nothing was changed.", title="Form expired")
    # Clearing the cookie is not enough: a copy of it (saved, stolen) must stop working too.
    if browser_session is not None and browser_session.user_id is not None:
        await end_sessions(session=session, user_id=browser_session.user_id)
    response = redirect("/console/login")
    clear_session(response, secure=is_https(request, public_base_url=settings.public_base_url))
    return response


# --- owned apps ------------------------------------------------------------------------------


@router.get("/apps")
async def apps_list(request: Request, session: SessionDep, cursor: Cursor = None) -> Response:
    """The organization's apps: one page query (the API's owned apps page plus the approval flag)."""
    viewer = await provider_viewer(request, session)
    rows, next_url, previous_url = await keyset_page(
        session,
        queries.OWNED_APPS_LIST,
        conditions=queries.OWNED_APPS_LIST_CONDITIONS,
        params=_page_params(cursor),
        request=_without_notice(request),
        organization_id=viewer.principal.organization_id,
    )
    return render(
        request,
        "console/apps.html",
        viewer=viewer,
        title="Apps",
        section="apps",
        apps=rows,
        next_url=next_url,
        previous_url=previous_url,
        notice=_notice(request),
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
    return render(
        request,
        "console/app_form.html",
        status_code=status_code,
        viewer=viewer,
        title=f"Edit {app.name}" if app is not None else "New app",
        section="apps",
        app=_app_nav(app, "edit") if app is not None else None,
        values=values,
        errors=errors or {},
        error=error,
        choices=forms.APP_CHOICES,
        action=f"/console/apps/{app.id}/edit" if app is not None else "/console/apps",
    )


_BLANK_APP: dict[str, Any] = {
    **dict.fromkeys((*forms.APP_TEXT_FIELDS, *forms.APP_OPTIONAL_FIELDS), ""),
    **dict.fromkeys(forms.APP_FLAGS, False),
    "trigger_conditions": [],
    "required_scopes": [],
    "allowed_redirect_uris": [],
}


@router.get("/apps/new")
async def app_new(request: Request, session: SessionDep) -> Response:
    viewer = await provider_viewer(request, session)
    return _app_form(request, viewer, values=_BLANK_APP, app=None)


@router.post("/apps")
async def app_create(request: Request, session: SessionDep) -> Response:
    """`POST /owned_apps` through `apps.service.create_app`; refused: the form with the API's messages."""
    viewer, form = await posted_form(request, session)
    values = forms.app_values(form)
    try:
        _, data = forms.app_input(form)
        view = await apps_service.create_app(session=session, principal=viewer.principal, data=data)
    except forms.FormErrors as exc:
        return _app_form(request, viewer, values=values, app=None, errors=exc.errors, status_code=400)
    except BadRequest as exc:
        errors = forms.api_errors(exc).errors
        return _app_form(request, viewer, values=values, app=None, errors=errors, status_code=400)
    except PaymentRequired as exc:
        return _app_form(request, viewer, values=values, app=None, error=exc.detail, status_code=402)
    except Conflict as exc:
        return _app_form(request, viewer, values=values, app=None, error=exc.detail, status_code=409)
    return redirect(f"/console/apps/{view['id']}", "app-created")


@router.get("/apps/{app_id}")
async def app_overview(request: Request, session: SessionDep, app_id: AppId) -> Response:
    """The app: its attributes, the secret (revealed on demand) and the 24-hour chart."""
    viewer = await provider_viewer(request, session)
    rows = await apps_repository.OWNED_APP.fetch(
        session, organization_id=viewer.principal.organization_id, app_id=app_id
    )
    if not rows:
        raise NotFound("No owned app found with the given ID.")
    view = owned_app_json(rows[0])
    approved = (await queries.APP_APPROVED.fetch(session, app_id=app_id))[0]["is_approved"]
    now = utcnow()
    hours = chart.hours_of(await queries.hourly_attempts(session, app_id=app_id, now=now), now=now)
    return render(
        request,
        "console/app.html",
        viewer=viewer,
        title=view["name"],
        section="apps",
        app=_app_nav(_Named(app_id, view["name"]), "overview"),
        view=view,
        is_approved=approved,
        chart=chart.build(hours),
        notice=_notice(request),
    )


class _Named:
    def __init__(self, id_: uuid.UUID, name: str) -> None:
        self.id, self.name = id_, name


@router.get("/apps/{app_id}/edit")
async def app_edit(request: Request, session: SessionDep, app_id: AppId) -> Response:
    viewer, app = await _provider_app(request, session, app_id)
    return _app_form(request, viewer, values=forms.app_form_values(app), app=app)


@router.post("/apps/{app_id}/edit")
async def app_update(request: Request, session: SessionDep, app_id: AppId) -> Response:
    """`PUT /owned_apps/{id}` through `apps.service.update_app` (narrowing publicity uninstalls)."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    values = forms.app_values(form)
    try:
        _, data = forms.app_input(form)
        await apps_service.update_app(
            session=session, principal=viewer.principal, app=app, data=data, partial=False
        )
    except forms.FormErrors as exc:
        return _app_form(request, viewer, values=values, app=app, errors=exc.errors, status_code=400)
    except BadRequest as exc:
        errors = forms.api_errors(exc).errors
        return _app_form(request, viewer, values=values, app=app, errors=errors, status_code=400)
    except PaymentRequired as exc:
        return _app_form(request, viewer, values=values, app=app, error=exc.detail, status_code=402)
    return redirect(f"/console/apps/{app_id}", "app-saved")


@router.get("/apps/{app_id}/delete")
async def app_delete_confirm(request: Request, session: SessionDep, app_id: AppId) -> Response:
    viewer, app = await _provider_app(request, session, app_id)
    return render(
        request,
        "console/app_delete.html",
        viewer=viewer,
        title=f"Delete {app.name}",
        section="apps",
        app=_app_nav(app, "overview"),
        installation_count=app.installation_count,
    )


@router.post("/apps/{app_id}/delete")
async def app_delete(request: Request, session: SessionDep, app_id: AppId) -> Response:
    """`DELETE /owned_apps/{id}`: uninstalled everywhere (with uninstall triggers), then deleted."""
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    await apps_service.delete_app(session=session, principal=viewer.principal, app=app)
    return redirect(HOME, "app-deleted")


@router.post("/apps/{app_id}/secret/rotate")
async def app_secret_rotate(request: Request, session: SessionDep, app_id: AppId) -> Response:
    """`POST /owned_apps/{id}/rotate_secret`: the same input schema and service as the API."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    grace = RotateSecretInput.model_validate({"grace_period_seconds": field(form, "grace_period_seconds")})
    await apps_service.rotate_secret(
        session=session, principal=viewer.principal, app=app, grace_period_seconds=grace.grace_period_seconds
    )
    return redirect(f"/console/apps/{app.id}", "secret-rotated")


# --- webhooks --------------------------------------------------------------------------------


@router.get("/apps/{app_id}/webhooks")
async def webhooks_list(
    request: Request, session: SessionDep, app_id: AppId, cursor: Cursor = None
) -> Response:
    """The API's compiled webhooks page (subscriptions aggregated in the page query)."""
    viewer, app = await _provider_app(request, session, app_id)
    rows, next_url, previous_url = await keyset_page(
        session,
        queries.WEBHOOKS_LIST,
        conditions=webhooks_repository.WEBHOOKS_CONDITIONS,
        params=_page_params(cursor),
        request=_without_notice(request),
        app_id=app.id,
    )
    return render(
        request,
        "console/webhooks.html",
        viewer=viewer,
        title="Webhooks",
        section="apps",
        app=_app_nav(app, "webhooks"),
        webhooks=[
            {
                **webhook_schemas.webhook_json(row),
                "failing_since": row["failing_since"],
                "failures_in_streak": row["failures_in_streak"],
            }
            for row in rows
        ],
        next_url=next_url,
        previous_url=previous_url,
        notice=_notice(request),
    )


async def _webhook_form(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    app: App,
    *,
    values: dict[str, Any],
    webhook: Webhook | None,
    errors: dict[str, list[str]] | None = None,
    recover: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The webhook's form with the channel catalogue's picker; for an existing one also its health,
    the example sender and the endpoint-care forms."""
    webhook_id = str(webhook.id) if webhook is not None else None
    entries = await channel_registry.catalogue(session=session)
    rows = forms.with_blank_rows(values)
    return render(
        request,
        "console/webhook_form.html",
        status_code=status_code,
        viewer=viewer,
        title="Edit webhook" if webhook is not None else "New webhook",
        section="apps",
        app=_app_nav(app, "webhooks"),
        values=values,
        rows=rows,
        errors=errors or {},
        webhook_id=webhook_id,
        # The API's view: the same health attributes and 24-hour stats as GET .../webhooks/{id}.
        health=(
            {
                **webhook_schemas.Webhook.model_validate(webhook).model_dump(),
                "failing_since": webhook.failing_since,
                "failures_in_streak": webhook.failures_in_streak,
            }
            if webhook is not None
            else None
        ),
        recover=recover or {"since": "", "errors": {}},
        retention_days=settings_of(request).webhook_log_retention_days,
        channels=[
            {
                "pattern": entry.pattern,
                "scope": entry.scope,
                "actions": entry.actions,
                "description": entry.description,
                "missing_scope": catalogue.scope_not_required(entry, app.required_scopes),
                "subscribable": entry.subscribable,
                "examples": list(entry.examples),
            }
            for entry in entries
        ],
        row_warnings=_scope_warnings(rows, entries, app.required_scopes),
        action=(
            f"/console/apps/{app.id}/webhooks/{webhook_id}"
            if webhook_id is not None
            else f"/console/apps/{app.id}/webhooks"
        ),
        notice=_recovered_notice(request) or _notice(request),
    )


def _scope_warnings(
    rows: list[dict[str, Any]], entries: list[catalogue.CatalogueEntry], required_scopes: list[str]
) -> dict[int, list[str]]:
    """Per subscription row: the scopes its channels need that the app does not require."""
    warnings: dict[int, list[str]] = {}
    for index, row in enumerate(rows):
        pattern = row.get("channel_pattern") or ""
        missing = {
            scope
            for entry in catalogue.entries_subscribed(pattern, entries)
            if (scope := catalogue.scope_not_required(entry, required_scopes)) is not None
        }
        if pattern and missing:
            warnings[index] = sorted(missing)
    return warnings


def _recovered_notice(request: Request) -> str | None:
    """After a recovery: how many deliveries it requeued (the count rides in the redirect)."""
    requeued = request.query_params.get("requeued") or ""
    if request.query_params.get("notice") != "recovered" or not requeued.isdigit():
        return None
    count = int(requeued)
    return f"{count} {'delivery' if count == 1 else 'deliveries'} requeued: each gets one new attempt now."


@router.get("/apps/{app_id}/webhooks/new")
async def webhook_new(request: Request, session: SessionDep, app_id: AppId) -> Response:
    viewer, app = await _provider_app(request, session, app_id)
    return await _webhook_form(
        request, session, viewer, app, values={"endpoint_url": "", "channel_subscriptions": []}, webhook=None
    )


@router.post("/apps/{app_id}/webhooks")
async def webhook_create(request: Request, session: SessionDep, app_id: AppId) -> Response:
    """`POST /webhooks` through `webhooks.service.create_webhook`."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    values = {
        "endpoint_url": field(form, "endpoint_url"),
        "channel_subscriptions": forms.subscription_rows(form),
    }
    try:
        _, data = forms.webhook_input(form)
    except forms.FormErrors as exc:
        return await _webhook_form(
            request, session, viewer, app, values=values, webhook=None, errors=exc.errors, status_code=400
        )
    webhook = await webhooks_service.create_webhook(session=session, app=app, actor=viewer.user, data=data)
    return redirect(f"/console/apps/{app_id}/webhooks/{webhook.id}", "webhook-created")


@router.get("/apps/{app_id}/webhooks/{webhook_id}")
async def webhook_edit(
    request: Request, session: SessionDep, app_id: AppId, webhook_id: WebhookId
) -> Response:
    viewer, app = await _provider_app(request, session, app_id)
    webhook = await owned_webhook(session, app, webhook_id)
    return await _webhook_form(
        request, session, viewer, app, values=forms.webhook_form_values(webhook), webhook=webhook
    )


@router.post("/apps/{app_id}/webhooks/{webhook_id}")
async def webhook_update(
    request: Request, session: SessionDep, app_id: AppId, webhook_id: WebhookId
) -> Response:
    """`PUT /webhooks/{id}` through `webhooks.service.update_webhook`."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    webhook = await owned_webhook(session, app, webhook_id)
    values = {
        "endpoint_url": field(form, "endpoint_url"),
        "channel_subscriptions": forms.subscription_rows(form),
    }
    try:
        _, data = forms.webhook_input(form)
    except forms.FormErrors as exc:
        return await _webhook_form(
            request, session, viewer, app, values=values, webhook=webhook, errors=exc.errors, status_code=400
        )
    await webhooks_service.update_webhook(
        session=session, app=app, webhook=webhook, actor=viewer.user, changes=data.as_update()
    )
    return redirect(f"/console/apps/{app_id}/webhooks/{webhook_id}", "webhook-saved")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/delete")
async def webhook_delete(
    request: Request, session: SessionDep, app_id: AppId, webhook_id: WebhookId
) -> Response:
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    webhook = await owned_webhook(session, app, webhook_id)
    await webhooks_service.delete_webhook(session=session, app=app, webhook=webhook, actor=viewer.user)
    return redirect(f"/console/apps/{app_id}/webhooks", "webhook-deleted")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/enable")
async def webhook_enable(
    request: Request, session: SessionDep, app_id: AppId, webhook_id: WebhookId
) -> Response:
    """`PATCH /webhooks/{id}` with `{"is_disabled": false}`, through `webhooks.service.update_webhook`."""
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    webhook = await owned_webhook(session, app, webhook_id)
    data = forms.validated(webhook_schemas.WebhookUpdate, {"is_disabled": False})
    await webhooks_service.update_webhook(
        session=session, app=app, webhook=webhook, actor=viewer.user, changes=data
    )
    return redirect(f"/console/apps/{app_id}/webhooks/{webhook_id}", "webhook-enabled")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/test")
async def webhook_test(
    request: Request, session: SessionDep, app_id: AppId, webhook_id: WebhookId
) -> Response:
    """`POST /webhooks/{id}/test` through `webhooks.service.send_test_event`; on to its pending attempt."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    webhook = await owned_webhook(session, app, webhook_id)
    # `<action> <pattern>` of the catalogue's examples; empty: the plain test event.
    action, _, pattern = field(form, "example").partition(" ")
    try:
        example = (
            forms.validated(
                webhook_schemas.WebhookTestRequest, {"channel": pattern, "action": action or None}
            )
            if pattern
            else None
        )
        entry = await webhooks_service.send_test_event(
            session=session,
            webhook=webhook,
            max_attempts=settings_of(request).max_delivery_attempts,
            example=example,
        )
    except (forms.FormErrors, BadRequest) as exc:
        errors = exc.errors if isinstance(exc, forms.FormErrors) else forms.api_errors(exc).errors
        return error_page(
            request,
            400,
            "; ".join(m for ms in errors.values() for m in ms),
            viewer=viewer,
            title="No example",
        )
    except Conflict as exc:
        return error_page(request, 409, exc.detail, viewer=viewer, title="Webhook disabled")
    return redirect(f"/console/apps/{app_id}/deliveries/{entry.id}", "test-sent")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/recover")
async def webhook_recover(
    request: Request, session: SessionDep, app_id: AppId, webhook_id: WebhookId
) -> Response:
    """`POST /webhooks/{id}/recover` (the API's body schema, then `webhooks.service.recover`)."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    webhook = await owned_webhook(session, app, webhook_id)
    since = field(form, "since")
    try:
        data = forms.validated(webhook_schemas.RecoverRequest, {"since": since})
        requeued = await webhooks_service.recover(
            session=session,
            webhook=webhook,
            since=data.since,
            retention_days=settings_of(request).webhook_log_retention_days,
        )
    except (forms.FormErrors, BadRequest) as exc:
        errors = exc.errors if isinstance(exc, forms.FormErrors) else forms.api_errors(exc).errors
        values = forms.webhook_form_values(webhook)
        recover = {"since": since, "errors": errors}
        return await _webhook_form(
            request, session, viewer, app, values=values, webhook=webhook, recover=recover, status_code=400
        )
    except Conflict as exc:
        return error_page(request, 409, exc.detail, viewer=viewer, title="Webhook disabled")
    path = f"/console/apps/{app_id}/webhooks/{webhook_id}?{urlencode({'requeued': requeued})}"
    return redirect(path, "recovered")


# --- deliveries (webhook log entries) --------------------------------------------------------


LOG_ACTIONS = typing.get_args(webhook_schemas.LogAction)
# A Standard Webhooks `webhook-id` as the service makes them (delivery/outbox.py).
MESSAGE_ID = re.compile(r"msg_[0-9a-f]{32}")


def _utc_input(value: str | None) -> datetime | None:
    """A `datetime-local` input (no offset: UTC, as the API reads it, and bounded as the API's
    inputs are: ValueError outside them); None when empty."""
    if not value:
        return None
    return bounded_utc(datetime.fromisoformat(value))


@router.get("/apps/{app_id}/deliveries")
async def deliveries(
    request: Request,
    session: SessionDep,
    app_id: AppId,
    cursor: Cursor = None,
    status: Annotated[str | None, Query()] = None,
    webhook: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=500)] = None,
    action: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The API's log entries page with its filters, newest first, paginated by its cursors.

    `q` finds a message by its `webhook-id` (`msg_…`), anything else is a resource ID.
    """
    viewer, app = await _provider_app(request, session, app_id)
    errors: dict[str, list[str]] = {}
    if status and status not in LOG_STATUSES:
        errors["status"] = [f"Must be one of: {', '.join(LOG_STATUSES)}."]
    if action and action not in LOG_ACTIONS:
        errors["action"] = [f"Must be one of: {', '.join(LOG_ACTIONS)}."]
    search = (q or "").strip()
    is_message_id = MESSAGE_ID.fullmatch(search) is not None
    webhook_id = parse_uuid(webhook) if webhook else None
    if webhook and webhook_id is None:
        errors["webhook"] = ["Must be a webhook of this app."]
    bounds: dict[str, datetime | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            bounds[name] = _utc_input(value)
        except ValueError:
            errors[name] = ["Enter a date and time (YYYY-MM-DDTHH:MM, UTC)."]
    webhooks = list(
        (
            await session.execute(
                select(Webhook.id, Webhook.endpoint_url)
                .where(Webhook.app_id == app.id)
                .order_by(Webhook.created_at.desc())
                .limit(100)
            )
        ).all()
    )
    rows: list[Any] = []
    next_url = previous_url = None
    if not errors:
        filters = {
            "webhook_id": webhook_id,
            "status": status or None,
            "created_at_gte": bounds.get("since"),
            "created_at_lte": bounds.get("until"),
            "message_id": search if search and is_message_id else None,
            "resource_id": search if search and not is_message_id else None,
            "channel": (channel or "").strip() or None,
            "action": action or None,
        }
        shape = {name: value is not None for name, value in filters.items()}
        page, next_url, previous_url = await keyset_page(
            session,
            webhooks_repository.LOG_ENTRIES_PAGE,
            conditions=webhooks_repository.log_entry_conditions(**shape),
            shape=tuple(shape.values()),
            params=_page_params(cursor),
            request=_without_notice(request),
            app_id=app.id,
            kept_since=kept_since(request),
            **filters,
        )
        rows = [webhook_schemas.log_entry_json(row) for row in page]
    return render(
        request,
        "console/deliveries.html",
        status_code=400 if errors else 200,
        viewer=viewer,
        title="Deliveries",
        section="apps",
        app=_app_nav(app, "deliveries"),
        entries=rows,
        webhooks=webhooks,
        statuses=LOG_STATUSES,
        actions=LOG_ACTIONS,
        filters={
            "status": status or "",
            "webhook": webhook or "",
            "since": since or "",
            "until": until or "",
            "q": q or "",
            "channel": channel or "",
            "action": action or "",
        },
        errors=errors,
        next_url=next_url,
        previous_url=previous_url,
        notice=_notice(request),
    )


@router.get("/apps/{app_id}/deliveries/{entry_id}")
async def delivery_detail(
    request: Request, session: SessionDep, app_id: AppId, entry_id: EntryId
) -> Response:
    """One attempt (request and response) and every attempt of the same delivery."""
    viewer, app = await _provider_app(request, session, app_id)
    entry = await owned_log_entry(request, session, app, entry_id)
    delivery = await session.get(OutboundDelivery, entry.delivery_id)
    attempts = list(
        (
            await session.execute(
                select(WebhookLogEntry)
                .where(
                    WebhookLogEntry.delivery_id == entry.delivery_id,
                    WebhookLogEntry.app_id == app.id,
                    WebhookLogEntry.created_at >= kept_since(request),
                )
                .order_by(WebhookLogEntry.created_at, WebhookLogEntry.id)
                .limit(100)
            )
        ).scalars()
    )
    return render(
        request,
        "console/delivery.html",
        viewer=viewer,
        title=f"Delivery attempt {entry.retry_index + 1}",
        section="apps",
        app=_app_nav(app, "deliveries"),
        entry=webhook_schemas.WebhookLogEntry.model_validate(entry).model_dump(),
        delivery=delivery,
        attempts=attempts,
        notice=_notice(request),
    )


@router.post("/apps/{app_id}/deliveries/{entry_id}/redeliver")
async def delivery_redeliver(
    request: Request, session: SessionDep, app_id: AppId, entry_id: EntryId
) -> Response:
    """`POST /webhook_log_entries/{id}/redeliver` through `webhooks.service.redeliver`."""
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    entry = await owned_log_entry(request, session, app, entry_id)
    try:
        pending = await webhooks_service.redeliver(session=session, entry=entry)
    except Conflict as exc:
        return error_page(request, 409, exc.detail, viewer=viewer, title="Attempt in progress")
    return redirect(f"/console/apps/{app_id}/deliveries/{pending.id}", "redelivered")


# --- installations of an owned app -----------------------------------------------------------


@router.get("/apps/{app_id}/installations")
async def installations(
    request: Request, session: SessionDep, app_id: AppId, cursor: Cursor = None
) -> Response:
    """The API's owned app installations page (embedded objects joined) and one token count query."""
    viewer, app = await _provider_app(request, session, app_id)
    rows, next_url, previous_url = await paginate(
        session,
        installations_repository.app_installations(app_id=app.id),
        created_at=AppInstallation.created_at,
        id_=AppInstallation.id,
        params=_page_params(cursor),
        request=_without_notice(request),
        options=installations_service.installation_options(),
    )
    items = [row[0] for row in rows]
    counts = await queries.token_counts(session, [item.id for item in items])
    return render(
        request,
        "console/installations.html",
        viewer=viewer,
        title="Installations",
        section="apps",
        app=_app_nav(app, "installations"),
        installations=items,
        token_counts=counts,
        next_url=next_url,
        previous_url=previous_url,
        notice=_notice(request),
    )


async def _installation_page(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    app: App,
    installation: AppInstallation,
    *,
    new_token: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    tokens = list(
        (
            await session.execute(
                app_user_tokens.tokens_of(installation=installation)
                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
                .limit(100)
            )
        ).scalars()
    )
    return render(
        request,
        "console/installation.html",
        status_code=status_code,
        viewer=viewer,
        title=f"{app.name} in {installation.organization.name}",
        section="apps",
        app=_app_nav(app, "installations"),
        installation=installation,
        tokens=tokens,
        new_token=new_token,
        errors=errors or {},
        notice=_notice(request),
    )


@router.get("/apps/{app_id}/installations/{installation_id}")
async def installation_detail(
    request: Request, session: SessionDep, app_id: AppId, installation_id: InstallationId
) -> Response:
    viewer, app = await _provider_app(request, session, app_id)
    installation = await owned_installation(session, app, installation_id)
    return await _installation_page(request, session, viewer, app, installation)


@router.post("/apps/{app_id}/installations/{installation_id}/tokens")
async def token_mint(
    request: Request, session: SessionDep, app_id: AppId, installation_id: InstallationId
) -> Response:
    """`POST .../app_user_tokens`: the key is on this answer's page only (never stored, never again)."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    installation = await owned_installation(session, app, installation_id)
    try:
        expires_at = _utc_input(field(form, "expires_at"))
    except ValueError:
        return await _installation_page(
            request,
            session,
            viewer,
            app,
            installation,
            errors={"expires_at": ["Enter a date and time (YYYY-MM-DDTHH:MM, UTC)."]},
            status_code=400,
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
    return await _installation_page(
        request,
        session,
        viewer,
        app,
        installation,
        new_token={"id": str(token.id), "key": key, "expires_at": token.expires_at},
    )


@router.post("/apps/{app_id}/installations/{installation_id}/tokens/{token_id}/revoke")
async def token_revoke(
    request: Request, session: SessionDep, app_id: AppId, installation_id: InstallationId, token_id: TokenId
) -> Response:
    """`DELETE .../app_user_tokens/{id}`."""
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    installation = await owned_installation(session, app, installation_id)
    await app_user_tokens.revoke(session=session, installation=installation, token_id=token_id)
    return redirect(f"/console/apps/{app_id}/installations/{installation_id}", "token-revoked")


@router.post("/apps/{app_id}/installations/{installation_id}/uninstall")
async def owner_uninstall(
    request: Request, session: SessionDep, app_id: AppId, installation_id: InstallationId
) -> Response:
    """The spec's owner DELETE `/owned_apps/{id}/installations/{organization_id}`."""
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    installation = await owned_installation(session, app, installation_id)
    await installations_service.uninstall(
        session=session, installation=installation, actor_user_id=viewer.principal.user_id
    )
    return redirect(f"/console/apps/{app_id}/installations", "uninstalled")


# --- shares ----------------------------------------------------------------------------------


async def _shares_page(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    app: App,
    cursor: str | None,
    *,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    rows, next_url, previous_url = await paginate(
        session,
        apps_repository.app_shares(app_id=app.id),
        created_at=AppShare.created_at,
        id_=AppShare.id,
        params=_page_params(cursor),
        request=_without_notice(request),
        options=apps_repository.app_share_options(),
    )
    partners = await queries.partner_organizations(session, organization_id=viewer.principal.organization_id)
    return render(
        request,
        "console/shares.html",
        status_code=status_code,
        viewer=viewer,
        title="Shares",
        section="apps",
        app=_app_nav(app, "shares"),
        shares=[row[0] for row in rows],
        partners=partners,
        errors=errors or {},
        next_url=next_url,
        previous_url=previous_url,
        notice=_notice(request),
    )


@router.get("/apps/{app_id}/shares")
async def shares(request: Request, session: SessionDep, app_id: AppId, cursor: Cursor = None) -> Response:
    viewer, app = await _provider_app(request, session, app_id)
    return await _shares_page(request, session, viewer, app, cursor)


@router.post("/apps/{app_id}/shares")
async def share_add(request: Request, session: SessionDep, app_id: AppId) -> Response:
    """`POST /owned_apps/{id}/shares` through `apps.service.create_share`."""
    viewer, form = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    try:
        data = forms.validated(AppShareInput, {"organization_id": field(form, "organization_id")})
        await apps_service.create_share(session=session, principal=viewer.principal, app=app, data=data)
    except forms.FormErrors as exc:
        return await _shares_page(request, session, viewer, app, None, errors=exc.errors, status_code=400)
    except BadRequest as exc:
        errors = forms.api_errors(exc).errors
        return await _shares_page(request, session, viewer, app, None, errors=errors, status_code=400)
    except Conflict as exc:
        return await _shares_page(
            request, session, viewer, app, None, errors={"organization_id": [exc.detail]}, status_code=409
        )
    return redirect(f"/console/apps/{app_id}/shares", "share-added")


@router.post("/apps/{app_id}/shares/{share_id}/remove")
async def share_remove(request: Request, session: SessionDep, app_id: AppId, share_id: ShareId) -> Response:
    """`DELETE /owned_apps/{id}/shares/{share_id}`: the partner loses the app unless still allowed."""
    viewer, _ = await posted_form(request, session)
    app = await owned_app(session, viewer.principal, app_id)
    await apps_service.delete_share(session=session, principal=viewer.principal, app=app, share_id=share_id)
    return redirect(f"/console/apps/{app_id}/shares", "share-removed")


# --- the installing organization ---------------------------------------------------------------


@router.get("/installed")
async def installed(request: Request, session: SessionDep, cursor: Cursor = None) -> Response:
    """Apps installed in the viewer's organization: the API's app installations page."""
    viewer = await settings_viewer(request, session)
    rows, next_url, previous_url = await paginate(
        session,
        installations_repository.organization_installations(organization_id=viewer.principal.organization_id),
        created_at=AppInstallation.created_at,
        id_=AppInstallation.id,
        params=_page_params(cursor),
        request=_without_notice(request),
        options=installations_service.installation_options(),
    )
    installations = [row[0] for row in rows]
    return render(
        request,
        "console/installed.html",
        viewer=viewer,
        title="Installed apps",
        section="installed",
        installations=installations,
        actions={inst.id: _console_triggers(inst.app) for inst in installations},
        trigger_origins=[
            _origin(inst.app.trigger_url) for inst in installations if _console_triggers(inst.app)
        ],
        next_url=next_url,
        previous_url=previous_url,
        notice=_notice(request),
    )


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


@router.post("/installed/{installation_id}/trigger")
async def installed_trigger(
    request: Request, session: SessionDep, installation_id: InstallationId
) -> Response:
    """`setup`, `manual_nav` or `manual_dialog`: 303 to the app's trigger_url, as the install flow's
    trigger redirect (type, data, token, redirect_uri back to this page)."""
    viewer, form = await posted_form(request, session, provider=False)
    installation = await installations_repository.get_organization_installation(
        session=session, organization_id=viewer.principal.organization_id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No app installation found with the given ID.")
    type_ = field(form, "type")
    if type_ not in _console_triggers(installation.app):
        raise BadRequest(f"The app has no {type_ or 'such'} trigger.")
    settings = settings_of(request)
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
    request: Request, session: SessionDep, installation_id: InstallationId
) -> Response:
    """`DELETE /app_installations/{id}` through `installations.service.uninstall`."""
    viewer, _ = await posted_form(request, session, provider=False)
    installation = await installations_repository.get_organization_installation(
        session=session, organization_id=viewer.principal.organization_id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No app installation found with the given ID.")
    await installations_service.uninstall(
        session=session, installation=installation, actor_user_id=viewer.principal.user_id
    )
    return redirect("/console/installed", "uninstalled")


@router.get("/install")
async def install_catalogue(
    request: Request,
    session: SessionDep,
    cursor: Cursor = None,
    source: Annotated[str, Query(pattern="^(partner|public)$")] = "partner",
) -> Response:
    """Partner or public apps the organization may install, linking to the install flow."""
    viewer = await settings_viewer(request, session)
    organization_id = viewer.principal.organization_id
    statement = (
        apps_repository.partner_apps(organization_id=organization_id)
        if source == "partner"
        else apps_repository.public_apps()
    )
    rows, next_url, previous_url = await paginate(
        session,
        statement,
        created_at=App.created_at,
        id_=App.id,
        params=_page_params(cursor),
        request=_without_notice(request),
        options=catalog_repository.app_view_options(),
    )
    apps = [row[0] for row in rows]
    installed_ids = (
        set(
            (
                await session.execute(
                    select(AppInstallation.app_id).where(
                        AppInstallation.organization_id == organization_id,
                        AppInstallation.app_id.in_([app.id for app in apps]),
                    )
                )
            ).scalars()
        )
        if apps
        else set()
    )
    return render(
        request,
        "console/install.html",
        viewer=viewer,
        title="Install an app",
        section="install",
        source=source,
        apps=apps,
        installed_ids=installed_ids,
        next_url=next_url,
        previous_url=previous_url,
    )
