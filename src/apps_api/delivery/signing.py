"""Standard Webhooks signatures (https://www.standardwebhooks.com), keyed with the app secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def signing_key(secret: str) -> bytes:
    """The HMAC key of an app secret, decoded as the `standardwebhooks` library does it.

    App secrets are 64 hex characters (older ones standard base64 of 32 random bytes); either is
    base64-decoded, as Standard Webhooks defines it; a `whsec_` prefix is accepted too.
    """
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw + "==")
    except (binascii.Error, ValueError):
        return raw.encode()


def sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    to_sign = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    *, secret: str, message_id: str, timestamp: int, body: bytes, previous_secret: str | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers; during a rotation's grace period, signed with both secrets
    (`v1,<new> v1,<previous>`), so a receiver that knows either one verifies."""
    signatures = [sign(secret=secret, message_id=message_id, timestamp=timestamp, body=body)]
    if previous_secret is not None and previous_secret != secret:
        signatures.append(sign(secret=previous_secret, message_id=message_id, timestamp=timestamp, body=body))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
