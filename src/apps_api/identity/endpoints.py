"""`POST /identity/token`: an app exchanges an app user code for its app user's API token."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.identity import service
from apps_api.identity.schemas import AppUserToken, OAuthError, TokenRequest
from apps_api.kit.db import SessionDep
from apps_api.kit.throttle import Subject, ThrottleUnavailable, locked_for, record_failure, record_success
from apps_api.models import App

router = APIRouter(prefix="/identity", tags=["Identity"])

# RFC 6749 section 5.1: token responses must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": OAuthError,
        "description": (
            "RFC 6749 error: `invalid_request` (a parameter is missing), `unsupported_grant_type`, "
            "`invalid_client` (unknown app or wrong secret) or `invalid_grant` (the code is unknown, "
            "used, expired, issued to another app, or its installation is gone)."
        ),
    },
    429: {
        "model": OAuthError,
        "description": (
            "`temporarily_unavailable`: 5 failed client authentications of an app (its id in any "
            "spelling) within 15 minutes lock it (`Retry-After` seconds: 1 minute, doubling per lock "
            "up to 1 hour) for wrong secrets; the right secret is never refused by the lock."
        ),
    },
    503: {
        "model": OAuthError,
        "description": "`temporarily_unavailable`: the throttle's store (Redis) did not answer; retry.",
    },
}


@router.post(
    "/token",
    response_model=AppUserToken,
    summary="Exchange an app user code for an API token",
    name="exchange_app_user_code",
    responses=_ERRORS,
)
async def issue_token(
    request: Request, session: SessionDep, form: Annotated[TokenRequest, Form()]
) -> AppUserToken | JSONResponse:
    """Form-encoded (`application/x-www-form-urlencoded`): `grant_type=authorization_code`,
    `code` (the `app_user_code` of an install trigger's `data`), `client_id` (the app id) and
    `client_secret` (the app secret). Codes are single-use and expire 10 minutes after issue.
    The token is revoked when the app is uninstalled."""
    refused = _form_error(form)
    if refused is not None:
        return refused
    code, client_id, client_secret = form.code, form.client_id, form.client_secret
    assert code is not None and client_id is not None and client_secret is not None
    app_id = service.client_app_id(client_id)
    if app_id is None:
        # Not an app id in any spelling: refused without a lookup, so nothing is guessed here.
        return _error("invalid_client", service.invalid_client().description)
    try:
        app = await _throttled_client(request, session=session, app_id=app_id, client_secret=client_secret)
        issued = await service.exchange_app_user_code(session=session, app=app, code=code)
    except _ClientLocked as exc:
        return _locked(exc.seconds)
    except service.TokenError as exc:
        return _error(exc.error, exc.description)
    except ThrottleUnavailable:
        return _error("temporarily_unavailable", "Try again in a moment.", status_code=503, retry_after=5)
    body = AppUserToken(
        access_token=issued.access_token,
        user_id=issued.user_id,
        organization_id=issued.organization_id,
        app_id=issued.app_id,
    )
    return JSONResponse(body.model_dump(mode="json"), headers=_NO_STORE)


def _form_error(form: TokenRequest) -> JSONResponse | None:
    """`invalid_request` or `unsupported_grant_type` for an incomplete form; None for a whole one."""
    given = {
        "grant_type": form.grant_type,
        "code": form.code,
        "client_id": form.client_id,
        "client_secret": form.client_secret,
    }
    missing = [name for name, value in given.items() if not value]
    if "grant_type" in missing:
        return _error("invalid_request", "Missing parameter: grant_type.")
    if form.grant_type != "authorization_code":
        return _error("unsupported_grant_type", "Only grant_type=authorization_code is supported.")
    if missing:
        return _error("invalid_request", f"Missing parameter(s): {', '.join(missing)}.")
    return None


class _ClientLocked(Exception):
    """The app's client authentication is locked for `seconds` after too many wrong secrets."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


async def _throttled_client(
    request: Request, *, session: AsyncSession, app_id: uuid.UUID, client_secret: str
) -> App:
    """The app whose secret this is, each wrong secret counted: TokenError, or _ClientLocked once
    the app's lock is on (ThrottleUnavailable when the throttle's store does not answer)."""
    # Secret guessing is throttled per app across processes (Redis), under the app's canonical id
    # (every spelling of it counts once). The secret is checked first and the lock refuses only
    # wrong ones: whoever knows an app's id cannot block its code exchanges.
    redis = getattr(request.app.state, "arq", None)
    subjects = [Subject("token-client", str(app_id))]
    try:
        app = await service.authenticate_client(session=session, app_id=app_id, client_secret=client_secret)
    except service.TokenError:
        locked = await record_failure(redis, subjects) or await locked_for(redis, subjects)
        if locked:
            raise _ClientLocked(locked) from None
        raise
    await record_success(redis, subjects)
    return app


def _error(
    error: str, description: str, *, status_code: int = 400, retry_after: int | None = None
) -> JSONResponse:
    headers = _NO_STORE if retry_after is None else {**_NO_STORE, "Retry-After": str(retry_after)}
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status_code, headers=headers
    )


def _locked(seconds: int) -> JSONResponse:
    return _error(
        "temporarily_unavailable",
        f"Too many failed client authentications for this client_id; retry after {seconds} seconds.",
        status_code=429,
        retry_after=seconds,
    )
