"""Access checks as dependencies, in docs/design.md section 4's order.

401 (credentials) -> 403 (subscription) -> 403 (organization) -> 403 (`settings`)
[-> 403 (an app principal on a provider route)] -> 404 (resource). The organization, permission
and provider checks are `auth.policy.refusal()`, the rule event matching uses too.

`identify` decides once per request who calls (a `Principal`: kind, organization, permissions);
each kind of route (`ProviderReader`, `InstallerWriter`, ...) calls it, then only checks it
(docs/permissions.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import TypeAdapter, ValidationError, WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.policy import SETTINGS, USERS, Collection, Family, missing_permission, refusal
from apps_api.auth.service import Principal, authenticate_token
from apps_api.kit.db import ReadConnections, SessionDep, WriteConnections, enter_until_response
from apps_api.kit.driver import Database, ReadConnection, WriteConnection
from apps_api.kit.errors import Forbidden, Unauthorized
from apps_api.kit.routing import documents_security

if TYPE_CHECKING:
    from apps_api.auth.app_tokens import AppTokenAuthenticator

# Documents the scheme in OpenAPI; parsing is ours (Token, Bearer and GIOSGAPP forms).
_authorization_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description=(
        "`Token <key>` or `Bearer <key>` (an API token, or an app-user token), `Bearer <access_token>` "
        "(a webhook's `app_user_auth`), or `GIOSGAPP <token> <app secret>`."
    ),
)


def _split(authorization: str) -> tuple[str, str]:
    scheme, _, credentials = authorization.strip().partition(" ")
    return scheme.lower(), credentials.strip()


def api_token_key(authorization: str | None) -> str | None:
    """The key of a `Token <key>` or `Bearer <key>` header, else None."""
    if not authorization:
        return None
    scheme, credentials = _split(authorization)
    if scheme in ("token", "bearer") and credentials and " " not in credentials:
        return credentials
    return None


async def identify(request: Request, session: Database) -> Principal:
    """The caller of the request's `Authorization` header, decided once per request (then kept on
    `request.state`); 401 without a live one."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Unauthorized("Authentication credentials were not provided.")
    principal = await _principal_of(request, session, authorization)
    if principal is None:
        raise Unauthorized("Invalid, expired or revoked token.")
    request.state.principal = principal
    return principal


async def _principal_of(request: Request, session: Database, authorization: str) -> Principal | None:
    """The live caller the header's credentials name (the first of its forms that applies), or None."""
    scheme, credentials = _split(authorization)
    key = api_token_key(authorization)
    authenticate_app: AppTokenAuthenticator | None = getattr(
        request.app.state, "authenticate_app_token", None
    )
    if key is not None and not _is_jwt(key):
        cache = getattr(request.app.state, "principal_cache", None)
        return await authenticate_token(session=session, key=key, cache=cache)
    if key is not None and scheme == "bearer" and authenticate_app is not None:
        # A webhook's `app_user_auth`, used as `<token_type> <access_token>`.
        return await authenticate_app(session=session, token=key, app_secret=None)
    if scheme == "giosgapp" and authenticate_app is not None:
        parts = credentials.split()
        if len(parts) == 2:
            return await authenticate_app(session=session, token=parts[0], app_secret=parts[1])
    return None


def _is_jwt(key: str) -> bool:
    # API token keys are URL-safe base64 (no dots); an access token is a JWT (three parts).
    return key.count(".") == 2


# --- the checks, each defined once, applied in docs/design.md section 4's order -----------------------


def check_subscribed(principal: Principal) -> None:
    """403 when the caller's organization has no active subscription."""
    if not principal.has_active_subscription():
        raise Forbidden(
            "Your organization does not have an active subscription; "
            "the operator of this service can renew it."
        )


def check_settings(principal: Principal) -> None:
    """403 without the `settings` permission (routes with no organization in the path)."""
    if not principal.has_permission(SETTINGS):
        raise Forbidden(missing_permission(principal, SETTINGS))


def check_reads(principal: Principal, collection: Collection) -> None:
    """403 with `auth.policy`'s reason when the caller may not read the collection."""
    reason = refusal(principal, collection)
    if reason is not None:
        raise Forbidden(reason)


def check_organization_settings(principal: Principal, organization_id: uuid.UUID) -> None:
    """The checks of an organization's own collections: subscription, organization, `settings`."""
    check_subscribed(principal)
    check_reads(principal, Collection(Family.ORGANIZATION, organization_id, SETTINGS))


def check_organization_provider(principal: Principal, organization_id: uuid.UUID) -> None:
    """The checks of an organization's provider collections (`owned_apps/...`): never an app
    principal, whatever its scopes (owned apps and their secrets, shares, webhooks, log
    entries, owned app installations, app-user tokens)."""
    check_subscribed(principal)
    check_reads(principal, Collection(Family.PROVIDER, organization_id, SETTINGS))


def check_not_app(principal: Principal) -> None:
    """403 for an app principal on what only a person grants: installing, uninstalling, minting."""
    if principal.is_app:
        raise Forbidden(
            "Apps cannot install or uninstall apps or mint tokens; a user of the organization must."
        )


_ORGANIZATION = "The caller's organization."


# --- one dependency per kind of route: the caller, its checks and the database in one call ------
# A chain (route -> checks -> caller -> session) cost a dependency level each, about as much as a
# bare Starlette route (bench/ANALYSIS.md). Each kind below resolves the caller, applies the
# kind's checks in docs/design.md section 4's order and hands over the database in one call.
#
# The organization in the path is declared as a string and parsed here, after the caller is
# identified: FastAPI validates a dependency's own parameters before calling it, and a 401 must
# come before any 400 for a malformed path. The schema still says uuid, so OpenAPI is unchanged.
RawOrganizationId = Annotated[
    str,
    Path(description=_ORGANIZATION),
    WithJsonSchema({"type": "string", "format": "uuid", "description": _ORGANIZATION}),
]
_UUID: TypeAdapter[uuid.UUID] = TypeAdapter(uuid.UUID)


def path_uuid(name: str, raw: str) -> uuid.UUID:
    """A UUID path parameter, or the 400 FastAPI itself gives for a malformed one."""
    try:
        return _UUID.validate_python(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("path", name)} for error in exc.errors(include_url=False)]
        ) from None


@dataclass(frozen=True, slots=True)
class Reader:
    """A GET's caller, checked for the route's kind, and its read-only connection."""

    principal: Principal
    db: ReadConnection


@dataclass(frozen=True, slots=True)
class Writer:
    """A write's caller, checked for the route's kind, and the request's unit of work."""

    principal: Principal
    session: AsyncSession


@dataclass(frozen=True, slots=True)
class StatementWriter:
    """A write's caller, checked for the route's kind, and its transaction on a plain connection:
    for writes whose services run compiled statements only (`kit.driver.WriteConnection`)."""

    principal: Principal
    db: WriteConnection


Check = Callable[[Principal], None]
OrganizationCheck = Callable[[Principal, uuid.UUID], None]


def _subscribed_with_settings(principal: Principal) -> None:
    check_subscribed(principal)
    check_settings(principal)


def _organization_users(principal: Principal, organization_id: uuid.UUID) -> None:
    check_subscribed(principal)
    check_reads(principal, Collection(Family.ORGANIZATION, organization_id, USERS))


def _organization_installer(principal: Principal, organization_id: uuid.UUID) -> None:
    check_organization_settings(principal, organization_id)
    check_not_app(principal)


# `identify` reads the Authorization header itself; each kind documents the scheme for OpenAPI
# (`documents_security`): resolving `_authorization_header` as a dependency cost a level per request.
_documented = documents_security(_authorization_header)


def _read_connection(request: Request) -> Awaitable[ReadConnection]:
    """The request's read connection, back to the pool before the response is sent.

    Entered by a plain coroutine dependency (`kit.db.enter_until_response`), not a generator
    one, which FastAPI would wrap at every request. A connection that ran no transaction goes
    back to the pool without a round trip.
    """
    read_connections: ReadConnections = request.app.state.read_connections
    return enter_until_response(request, read_connections())


def _reader(check: Check) -> Callable[..., Awaitable[Reader]]:
    @_documented
    async def reader(request: Request) -> Reader:
        db = await _read_connection(request)
        principal = await identify(request, db)
        check(principal)
        return Reader(principal, db)

    return reader


def _organization_reader(check: OrganizationCheck) -> Callable[..., Awaitable[Reader]]:
    @_documented
    async def reader(request: Request, organization_id: RawOrganizationId) -> Reader:
        db = await _read_connection(request)
        principal = await identify(request, db)
        check(principal, path_uuid("organization_id", organization_id))
        return Reader(principal, db)

    return reader


def _organization_writer(check: OrganizationCheck) -> Callable[..., object]:
    @_documented
    async def writer(request: Request, session: SessionDep, organization_id: RawOrganizationId) -> Writer:
        principal = await identify(request, session)
        check(principal, path_uuid("organization_id", organization_id))
        return Writer(principal, session)

    return writer


_settings_reader = _reader(_subscribed_with_settings)
_org_settings_reader = _organization_reader(check_organization_settings)
_org_users_reader = _organization_reader(_organization_users)
_provider_reader = _organization_reader(check_organization_provider)
SettingsReader = Annotated[Reader, Depends(_settings_reader)]
OrgSettingsReader = Annotated[Reader, Depends(_org_settings_reader)]
OrgUsersReader = Annotated[Reader, Depends(_org_users_reader)]
ProviderReader = Annotated[Reader, Depends(_provider_reader)]


def _organization_statement_writer(check: OrganizationCheck) -> Callable[..., Awaitable[StatementWriter]]:
    @_documented
    async def writer(request: Request, organization_id: RawOrganizationId) -> StatementWriter:
        write_connections: WriteConnections = request.app.state.write_connections
        db = await enter_until_response(request, write_connections())
        principal = await identify(request, db)
        check(principal, path_uuid("organization_id", organization_id))
        return StatementWriter(principal, db)

    return writer


# Writes share the request's unit of work (`SessionDep`) with the loaders and services they call.
InstallerWriter = Annotated[Writer, Depends(_organization_writer(_organization_installer))]
ProviderWriter = Annotated[Writer, Depends(_organization_writer(check_organization_provider))]
# A provider write on a plain connection (no ORM session): its service runs compiled statements only.
ProviderStatementWriter = Annotated[
    StatementWriter, Depends(_organization_statement_writer(check_organization_provider))
]
