"""Plain HTML forms to the API's own input schemas, and the API's field errors back to the form.

The console never validates on its own: a form becomes the JSON body the API would get, the
API's schema (`OwnedAppInput`, `WebhookCreate`, ...) and then its service validate it, and the
messages come back keyed by field, as the API's 400 names them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from apps_api.apps.schemas import OwnedAppInput
from apps_api.kit.errors import BadRequest, validation_errors
from apps_api.kit.schemas import bounded_utc
from apps_api.models import SCOPES, TRIGGER_CONDITIONS
from apps_api.webhooks.schemas import MAX_SUBSCRIPTIONS, WebhookCreate

Model = TypeVar("Model", bound=BaseModel)
FieldErrors = dict[str, list[str]]

APP_TEXT_FIELDS = (
    "name",
    "description",
    "terms_of_service_url",
    "privacy_policy_url",
)
APP_OPTIONAL_FIELDS = (
    "icon_asset_id",
    "app_user_default_first_name",
    "app_user_default_last_name",
    "app_user_default_alias",
    "trigger_url",
)
APP_FLAGS = ("is_available_to_partners", "is_available_to_anyone", "is_app_user_required")
# Rows the webhook form offers beyond the current subscriptions (no JavaScript to add rows).
BLANK_SUBSCRIPTION_ROWS = 3


class FormErrors(Exception):
    """The API refused the form: messages by form field (`""`: the form as a whole)."""

    def __init__(self, errors: FieldErrors, detail: str = "Check the fields marked below.") -> None:
        super().__init__(detail)
        self.errors = errors
        self.detail = detail


def by_field(errors: FieldErrors) -> FieldErrors:
    """`allowed_redirect_uris.2` -> `allowed_redirect_uris`: the form shows one message list per input."""
    grouped: FieldErrors = {}
    for key, messages in errors.items():
        name = key.split(".", 1)[0] if not key.startswith("channel_subscriptions") else _row_key(key)
        grouped.setdefault(name, []).extend(messages)
    return grouped


def _row_key(key: str) -> str:
    # channel_subscriptions.3.channel_pattern -> channel_subscriptions.3
    parts = key.split(".")
    return ".".join(parts[:2])


def validated(model: type[Model], data: dict[str, Any]) -> Model:
    """The API's schema over the form's values; its 400 messages as `FormErrors`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _, errors = validation_errors(list(exc.errors()))
        raise FormErrors(by_field(errors)) from None


def api_errors(exc: BadRequest) -> FormErrors:
    """A service's 400 (field messages) as the form's errors."""
    return FormErrors(by_field(exc.errors or {"": [exc.detail]}))


# --- apps ------------------------------------------------------------------------------------


def field(form: FormData, name: str) -> str:
    """A text field as posted ("" when absent, or not text)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _optional(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _strings(form: FormData, name: str) -> list[str]:
    return [value for value in form.getlist(name) if isinstance(value, str)]


def utc_input(value: str | None) -> datetime | None:
    """A `datetime-local` input (no offset: UTC, as the API reads it, and bounded as the API's
    inputs are: ValueError outside them); None when empty."""
    if not value:
        return None
    return bounded_utc(datetime.fromisoformat(value))


def app_values(form: FormData) -> dict[str, Any]:
    """What the app form posted, as the JSON body of a PUT (every attribute given)."""
    data: dict[str, Any] = {name: field(form, name) for name in APP_TEXT_FIELDS}
    data.update({name: _optional(form, name) for name in APP_OPTIONAL_FIELDS})
    data.update({name: form.get(name) == "on" for name in APP_FLAGS})
    data["trigger_conditions"] = _strings(form, "trigger_conditions")
    data["required_scopes"] = _strings(form, "required_scopes")
    uris = field(form, "allowed_redirect_uris")
    data["allowed_redirect_uris"] = [line.strip() for line in uris.splitlines() if line.strip()]
    return data


def app_form_values(app: Any) -> dict[str, Any]:
    """An app (ORM object or owned view) as the form's values."""

    def get(name: str) -> Any:
        return app[name] if isinstance(app, dict) else getattr(app, name)

    values = {name: get(name) for name in (*APP_TEXT_FIELDS, *APP_OPTIONAL_FIELDS, *APP_FLAGS)}
    values["trigger_conditions"] = list(get("trigger_conditions"))
    values["required_scopes"] = list(get("required_scopes"))
    values["allowed_redirect_uris"] = list(get("allowed_redirect_uris"))
    return values


def app_input(form: FormData) -> tuple[dict[str, Any], OwnedAppInput]:
    values = app_values(form)
    return values, validated(OwnedAppInput, values)


APP_CHOICES = {"trigger_conditions": TRIGGER_CONDITIONS, "required_scopes": SCOPES}


# --- webhooks --------------------------------------------------------------------------------


def subscription_rows(form: FormData) -> list[dict[str, Any]]:
    """The subscription rows as posted (`sub-<i>-pattern` or `sub-<i>-pick`, `sub-<i>-added`, ...);
    empty rows dropped."""
    rows = []
    for index in range(MAX_SUBSCRIPTIONS + BLANK_SUBSCRIPTION_ROWS):
        pattern = form.get(f"sub-{index}-pattern")
        if pattern is None:
            continue
        # The row's channel picker counts when nothing was typed (the page's script copies a
        # pick into the pattern; without it, the pick is posted as is).
        picked = form.get(f"sub-{index}-pick")
        if isinstance(pattern, str) and not pattern.strip() and isinstance(picked, str):
            pattern = picked
        flags = {
            "is_additions_subscribed": form.get(f"sub-{index}-added") == "on",
            "is_changes_subscribed": form.get(f"sub-{index}-changed") == "on",
            "is_removals_subscribed": form.get(f"sub-{index}-removed") == "on",
        }
        if isinstance(pattern, str) and pattern.strip():
            rows.append({"channel_pattern": pattern.strip(), **flags})
    return rows


def webhook_input(form: FormData) -> tuple[dict[str, Any], WebhookCreate]:
    url = form.get("endpoint_url")
    values = {
        "endpoint_url": url.strip() if isinstance(url, str) else "",
        "channel_subscriptions": subscription_rows(form),
    }
    return values, validated(WebhookCreate, values)


def webhook_form_values(webhook: Any) -> dict[str, Any]:
    return {
        "endpoint_url": webhook.endpoint_url,
        "channel_subscriptions": [
            {
                "channel_pattern": subscription.channel_pattern,
                "is_additions_subscribed": subscription.is_additions_subscribed,
                "is_changes_subscribed": subscription.is_changes_subscribed,
                "is_removals_subscribed": subscription.is_removals_subscribed,
            }
            for subscription in webhook.channel_subscriptions
        ],
    }


def with_blank_rows(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the form shows: the given subscriptions, then a few empty ones to add more."""
    rows = list(values.get("channel_subscriptions") or [])
    blank = {
        "channel_pattern": "",
        "is_additions_subscribed": True,
        "is_changes_subscribed": True,
        "is_removals_subscribed": True,
    }
    return rows + [dict(blank) for _ in range(BLANK_SUBSCRIPTION_ROWS)]


def form_errors(exc: FormErrors | BadRequest) -> FieldErrors:
    """The form's errors of a refusal by the API's schema (`FormErrors`) or its service (400)."""
    return exc.errors if isinstance(exc, FormErrors) else api_errors(exc).errors
