"""What an install must satisfy: the Apps feature, the scopes it grants, its app user's names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps_api.auth.policy import Reader, missing_grants
from apps_api.kit.errors import BadRequest, Forbidden
from apps_api.models import SCOPES, Organization

NAME_MAX_LENGTH = 150
AppUserNames = tuple[str | None, str | None, str | None]


@dataclass(frozen=True)
class AppUserInput:
    """Names for the app user, overriding the app's defaults; None keeps the default."""

    first_name: str | None = None
    last_name: str | None = None
    alias: str | None = None


def require_apps_feature(organization: Organization) -> None:
    """403 unless the organization may install apps."""
    if not organization.has_feature("apps"):
        raise Forbidden(
            "Your organization does not have the Apps feature; the operator of this service can enable it."
        )


def check_scopes(app: Any, allowed_scopes: list[str] | None) -> list[str]:
    """The scopes to grant, checked against the app's row."""
    if allowed_scopes is None:
        return sorted(set(app["required_scopes"]))
    unknown = sorted(set(allowed_scopes) - set(SCOPES))
    if unknown:
        raise BadRequest(
            errors={"allowed_scopes": [f"Unknown scope: {', '.join(unknown)}. Allowed: {', '.join(SCOPES)}."]}
        )
    missing = sorted(set(app["required_scopes"]) - set(allowed_scopes))
    if missing:
        raise BadRequest(
            errors={"allowed_scopes": [f"Must include the app's required scopes: {', '.join(missing)}."]}
        )
    return sorted(set(allowed_scopes))


def check_grantable(granter: Reader | None, scopes: list[str]) -> None:
    """403 when the installing user would grant the app a permission they do not hold themselves."""
    missing = missing_grants(granter=granter, scopes=frozenset(scopes))
    if missing:
        raise Forbidden(
            f"You cannot grant the app permissions you do not have: {', '.join(missing)}. "
            "A user of your organization who has them, or your administrator, can install it."
        )


def _name_error(name: str) -> str | None:
    """What is wrong with a given (stripped) name, if anything."""
    if not name:
        return "This field may not be blank."
    if len(name) > NAME_MAX_LENGTH:
        return f"Ensure this field has no more than {NAME_MAX_LENGTH} characters."
    return None


def app_user_names(app: Any, given: AppUserInput | None) -> AppUserNames:
    """The app user's names: the given ones over the defaults of the app's row."""
    given = given or AppUserInput()
    errors: dict[str, list[str]] = {}
    names: dict[str, str | None] = {}
    for field in ("first_name", "last_name", "alias"):
        value: str | None = getattr(given, field)
        if value is not None:
            value = value.strip()
            error = _name_error(value)
            if error is not None:
                errors[f"app_user.{field}"] = [error]
        names[field] = value if value is not None else app[f"app_user_default_{field}"]
    for field in ("first_name", "last_name"):
        if names[field] is None and f"app_user.{field}" not in errors:
            errors[f"app_user.{field}"] = ["This field is required: the app has no default."]
    if errors:
        raise BadRequest(errors=errors)
    return names["first_name"], names["last_name"], names["alias"]
