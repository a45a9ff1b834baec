"""An app's webhooks: list, create, edit (with the channel catalogue's picker, the webhook's health
and the endpoint-care forms), delete, re-enable, test event, recover; through `webhooks.service`,
as the API's webhook routes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from apps_api.console import forms, queries
from apps_api.console.dependencies import ConsoleApp, ConsoleWebhook, PostedForm, ProviderViewer
from apps_api.console.listing import PagerDep
from apps_api.console.render import app_nav, notice, page, page_router, redirect
from apps_api.console.webhook_form import WebhookFormDep
from apps_api.kit.db import SessionDep
from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import BadRequest, Conflict
from apps_api.web.routes import PageError
from apps_api.webhooks import repository as webhooks_repository
from apps_api.webhooks import schemas as webhook_schemas
from apps_api.webhooks import service as webhooks_service

router = page_router()


@router.get("/apps/{app_id}/webhooks")
async def webhooks_list(
    request: Request, session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, pager: PagerDep
) -> Response:
    """The API's compiled webhooks page (subscriptions aggregated in the page query)."""
    webhooks = await pager.keyset(
        session, queries.WEBHOOKS_LIST, conditions=webhooks_repository.WEBHOOKS_CONDITIONS, app_id=app.id
    )
    return page(
        request,
        "console/webhooks.html",
        viewer=viewer,
        title="Webhooks",
        section="apps",
        app=app_nav(app, "webhooks"),
        webhooks=[
            {
                **webhook_schemas.webhook_json(row),
                "failing_since": row["failing_since"],
                "failures_in_streak": row["failures_in_streak"],
            }
            for row in webhooks.rows
        ],
        notice=notice(request),
        **webhooks.links,
    )


def _posted_values(form: FormData) -> dict[str, Any]:
    return {
        "endpoint_url": forms.field(form, "endpoint_url"),
        "channel_subscriptions": forms.subscription_rows(form),
    }


@router.get("/apps/{app_id}/webhooks/new")
async def webhook_new(form_page: WebhookFormDep) -> Response:
    return await form_page.page(values={"endpoint_url": "", "channel_subscriptions": []}, webhook=None)


@router.post("/apps/{app_id}/webhooks")
async def webhook_create(
    session: SessionDep, form: PostedForm, viewer: ProviderViewer, app: ConsoleApp, form_page: WebhookFormDep
) -> Response:
    """`POST /webhooks` through `webhooks.service.create_webhook`."""
    try:
        _, data = forms.webhook_input(form)
    except forms.FormErrors as exc:
        values = _posted_values(form)
        return await form_page.page(values=values, webhook=None, errors=exc.errors, status_code=400)
    webhook = await webhooks_service.create_webhook(session=session, app=app, actor=viewer.user, data=data)
    return redirect(f"/console/apps/{app.id}/webhooks/{webhook.id}", "webhook-created")


@router.get("/apps/{app_id}/webhooks/{webhook_id}")
async def webhook_edit(webhook: ConsoleWebhook, form_page: WebhookFormDep) -> Response:
    return await form_page.page(values=forms.webhook_form_values(webhook), webhook=webhook)


@router.post("/apps/{app_id}/webhooks/{webhook_id}")
async def webhook_update(
    session: SessionDep,
    form: PostedForm,
    viewer: ProviderViewer,
    app: ConsoleApp,
    webhook: ConsoleWebhook,
    form_page: WebhookFormDep,
) -> Response:
    """`PUT /webhooks/{id}` through `webhooks.service.update_webhook`."""
    try:
        _, data = forms.webhook_input(form)
    except forms.FormErrors as exc:
        values = _posted_values(form)
        return await form_page.page(values=values, webhook=webhook, errors=exc.errors, status_code=400)
    await webhooks_service.update_webhook(
        session=session, app=app, webhook=webhook, actor=viewer.user, changes=data.as_update()
    )
    return redirect(f"/console/apps/{app.id}/webhooks/{webhook.id}", "webhook-saved")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/delete")
async def webhook_delete(
    session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, webhook: ConsoleWebhook
) -> Response:
    await webhooks_service.delete_webhook(session=session, app=app, webhook=webhook, actor=viewer.user)
    return redirect(f"/console/apps/{app.id}/webhooks", "webhook-deleted")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/enable")
async def webhook_enable(
    session: SessionDep, viewer: ProviderViewer, app: ConsoleApp, webhook: ConsoleWebhook
) -> Response:
    """`PATCH /webhooks/{id}` with `{"is_disabled": false}`, through `webhooks.service.update_webhook`."""
    data = forms.validated(webhook_schemas.WebhookUpdate, {"is_disabled": False})
    await webhooks_service.update_webhook(
        session=session, app=app, webhook=webhook, actor=viewer.user, changes=data
    )
    return redirect(f"/console/apps/{app.id}/webhooks/{webhook.id}", "webhook-enabled")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/test")
async def webhook_test(
    session: SessionDep, settings: SettingsDep, form: PostedForm, app: ConsoleApp, webhook: ConsoleWebhook
) -> Response:
    """`POST /webhooks/{id}/test` through `webhooks.service.send_test_event`; on to its pending attempt."""
    # `<action> <pattern>` of the catalogue's examples; empty: the plain test event.
    action, _, pattern = forms.field(form, "example").partition(" ")
    try:
        example = (
            forms.validated(
                webhook_schemas.WebhookTestRequest, {"channel": pattern, "action": action or None}
            )
            if pattern
            else None
        )
        entry = await webhooks_service.send_test_event(
            session=session, webhook=webhook, max_attempts=settings.max_delivery_attempts, example=example
        )
    except (forms.FormErrors, BadRequest) as exc:
        errors = forms.form_errors(exc)
        raise PageError(400, "; ".join(m for ms in errors.values() for m in ms), title="No example") from None
    except Conflict as exc:
        raise PageError(409, exc.detail, title="Webhook disabled") from None
    return redirect(f"/console/apps/{app.id}/deliveries/{entry.id}", "test-sent")


@router.post("/apps/{app_id}/webhooks/{webhook_id}/recover")
async def webhook_recover(
    session: SessionDep,
    settings: SettingsDep,
    form: PostedForm,
    app: ConsoleApp,
    webhook: ConsoleWebhook,
    form_page: WebhookFormDep,
) -> Response:
    """`POST /webhooks/{id}/recover` (the API's body schema, then `webhooks.service.recover`)."""
    since = forms.field(form, "since")
    try:
        data = forms.validated(webhook_schemas.RecoverRequest, {"since": since})
        requeued = await webhooks_service.recover(
            session=session,
            webhook=webhook,
            since=data.since,
            retention_days=settings.webhook_log_retention_days,
        )
    except (forms.FormErrors, BadRequest) as exc:
        return await form_page.page(
            values=forms.webhook_form_values(webhook),
            webhook=webhook,
            recover={"since": since, "errors": forms.form_errors(exc)},
            status_code=400,
        )
    except Conflict as exc:
        raise PageError(409, exc.detail, title="Webhook disabled") from None
    path = f"/console/apps/{app.id}/webhooks/{webhook.id}?{urlencode({'requeued': requeued})}"
    return redirect(path, "recovered")
