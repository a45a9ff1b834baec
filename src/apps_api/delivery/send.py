"""Sign and send one leased attempt: the webhook's POST or the trigger's GET, never raising."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from apps_api.auth.access_tokens import ACCESS_TOKEN_TTL, encode_access_token
from apps_api.delivery.attempts import Attempt, Deliverer
from apps_api.delivery.signing import signature_headers
from apps_api.delivery.triggers.location import trigger_location
from apps_api.kit.crypto import decrypt_optional
from apps_api.outbound.client import USER_AGENT, Outcome, send

logger = logging.getLogger(__name__)

# What a log entry's request body shows in place of the app user's access token.
REDACTED = "[redacted]"


@dataclass
class OutboundRequest:
    """What an attempt sends, and what its log entry shows of the body (None: no body)."""

    url: str
    headers: dict[str, str]
    content: bytes
    logged_body: str | None = None


def _webhook_request(deliverer: Deliverer, attempt: Attempt) -> OutboundRequest | str:
    # Secrets come from raw rows, encrypted (kit/crypto.py); decrypted here, inside the attempt,
    # so a secret that cannot be decrypted fails this attempt only.
    secret = decrypt_optional(attempt.app_secret)
    if secret is None:
        return "The app no longer exists."
    body: dict[str, Any] = dict(attempt.payload)
    access_token = None
    if (
        attempt.app_user_id is not None
        and attempt.installation_id is not None
        and attempt.installed
        and attempt.target_organization_id is not None
    ):
        access_token = encode_access_token(
            secret_key=deliverer.settings.secret_key,
            user_id=attempt.app_user_id,
            organization_id=attempt.target_organization_id,
            app_id=attempt.app_id,
            installation_id=attempt.installation_id,
            as_app_user=True,
        )
        # As giosg sends it: integrations call `Authorization: <token_type> <access_token>`.
        body["app_user_auth"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TOKEN_TTL.total_seconds()),
            "user_id": str(attempt.app_user_id),
            "organization_id": str(attempt.target_organization_id),
        }
    content = json.dumps(body, separators=(",", ":"), default=str).encode()
    headers = signature_headers(
        secret=secret,
        message_id=attempt.message_id,
        timestamp=int(time.time()),
        body=content,
        previous_secret=decrypt_optional(attempt.app_previous_secret),
    )
    headers["content-type"] = "application/json"
    # The log shows the bytes that were signed, not a re-serialization; only the bearer token,
    # a credential of the app user, is cut out of them (a JWT: JSON needs no escape of it).
    logged = content if access_token is None else content.replace(access_token.encode(), REDACTED.encode())
    return OutboundRequest(attempt.endpoint_url, headers, content, logged.decode())


async def _trigger_request(deliverer: Deliverer, attempt: Attempt) -> OutboundRequest | str:
    # The app's current secret (a rotation since the trigger was scheduled signs with the new one);
    # the copy kept with the delivery once the app is deleted.
    secret = decrypt_optional(attempt.app_secret or attempt.signing_secret)
    if not secret:
        return "The trigger has no signing secret."
    claims = attempt.payload.get("claims", {})

    def as_uuid(value: Any) -> uuid.UUID | None:
        return uuid.UUID(value) if value else None

    # Its token and app user code are minted per attempt, in a transaction of their own.
    async with deliverer.sessionmaker() as session, session.begin():
        url = await trigger_location(
            session=session,
            settings=deliverer.settings,
            type_=str(attempt.payload.get("type")),
            trigger_url=attempt.endpoint_url,
            app_secret=secret,
            app_id=attempt.app_id,
            organization_id=uuid.UUID(claims["organization_id"]),
            installation_id=as_uuid(claims.get("installation_id")),
            actor_user_id=as_uuid(claims.get("user_id")),
            app_user_id=as_uuid(claims.get("app_user_id")),
            redirect_uri=attempt.payload.get("redirect_uri"),
        )
    headers = signature_headers(
        secret=secret,
        message_id=attempt.message_id,
        timestamp=int(time.time()),
        body=b"",
        previous_secret=decrypt_optional(attempt.app_previous_secret) if attempt.app_secret else None,
    )
    # A GET without a body; its URL's `data` JWT is not logged (a trigger may carry an app user code).
    return OutboundRequest(url, headers, b"")


async def send_attempt(deliverer: Deliverer, attempt: Attempt) -> Outcome:
    """Sign and send one leased attempt through the SSRF-guarded client; never raises.

    Whatever goes wrong inside an attempt (a row that cannot be signed, a URL the client
    refuses) is that attempt's failure with a reason: it must never crash the endpoint's pump,
    which would cancel the other attempts in flight and leave this one to lapse forever.
    """
    try:
        request = (
            _webhook_request(deliverer, attempt)
            if attempt.kind == "webhook"
            else await _trigger_request(deliverer, attempt)
        )
    except Exception as error:
        logger.warning("delivery %s: request could not be built (%s)", attempt.id, type(error).__name__)
        return Outcome(error=f"The request could not be built: {type(error).__name__}.")
    if isinstance(request, str):
        # Nothing to retry against: the delivery fails now.
        attempt.max_attempts = attempt.attempt_count
        return Outcome(error=request)
    attempt.request_headers = {"user-agent": USER_AGENT, **request.headers}
    attempt.request_body = request.logged_body
    try:
        return await send(
            deliverer.client,
            method=attempt.method,
            url=request.url,
            headers=request.headers,
            content=request.content if attempt.method != "GET" else None,
            total_timeout=deliverer.settings.webhook_timeout,
        )
    except Exception as error:
        logger.warning("delivery %s: sending failed (%s)", attempt.id, type(error).__name__)
        return Outcome(error=f"Request failed: {type(error).__name__}.")
