"""The webhook form page: the subscriptions with the channel catalogue's picker (and the scopes a
row's channels need that the app does not require); for an existing webhook also its health, the
example sender and the endpoint-care forms (re-enable, recover)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.console import forms
from apps_api.console.dependencies import ConsoleApp, ProviderViewer, Viewer
from apps_api.console.render import app_nav, notice, page
from apps_api.kit.db import SessionDep
from apps_api.kit.deps import SettingsDep
from apps_api.models import App, Webhook
from apps_api.webhooks import catalogue, channel_registry
from apps_api.webhooks import schemas as webhook_schemas


@dataclass(frozen=True)
class WebhookForm:
    request: Request
    session: AsyncSession
    viewer: Viewer
    app: App
    retention_days: int

    async def page(
        self,
        *,
        values: dict[str, Any],
        webhook: Webhook | None,
        errors: dict[str, list[str]] | None = None,
        recover: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> Response:
        """The form with `values` (an existing `webhook`'s, or as posted) and the API's `errors`."""
        webhook_id = str(webhook.id) if webhook is not None else None
        entries = await channel_registry.catalogue(db=self.session)
        rows = forms.with_blank_rows(values)
        base = f"/console/apps/{self.app.id}/webhooks"
        return page(
            self.request,
            "console/webhook_form.html",
            status_code=status_code,
            viewer=self.viewer,
            title="Edit webhook" if webhook is not None else "New webhook",
            section="apps",
            app=app_nav(self.app, "webhooks"),
            values=values,
            rows=rows,
            errors=errors or {},
            webhook_id=webhook_id,
            health=_health(webhook) if webhook is not None else None,
            recover=recover or {"since": "", "errors": {}},
            retention_days=self.retention_days,
            channels=[_channel(entry, self.app.required_scopes) for entry in entries],
            row_warnings=_scope_warnings(rows, entries, self.app.required_scopes),
            action=f"{base}/{webhook_id}" if webhook_id is not None else base,
            notice=_recovered_notice(self.request) or notice(self.request),
        )


async def webhook_form(
    request: Request, session: SessionDep, settings: SettingsDep, viewer: ProviderViewer, app: ConsoleApp
) -> WebhookForm:
    return WebhookForm(request, session, viewer, app, settings.webhook_log_retention_days)


WebhookFormDep = Annotated[WebhookForm, Depends(webhook_form)]


def _health(webhook: Webhook) -> dict[str, Any]:
    """The API's view: the same health attributes and 24-hour stats as GET .../webhooks/{id}."""
    return {
        **webhook_schemas.Webhook.model_validate(webhook).model_dump(),
        "failing_since": webhook.failing_since,
        "failures_in_streak": webhook.failures_in_streak,
    }


def _channel(entry: catalogue.CatalogueEntry, required_scopes: list[str]) -> dict[str, Any]:
    return {
        "pattern": entry.pattern,
        "scope": entry.scope,
        "actions": entry.actions,
        "description": entry.description,
        "missing_scope": catalogue.scope_not_required(entry, required_scopes),
        "subscribable": entry.subscribable,
        "examples": list(entry.examples),
    }


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
