"""The validated field types of webhook inputs: endpoint URLs and channel patterns."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator

from apps_api.delivery.matching import (
    INSTALLATIONS_PATTERN,
    MAX_PATTERN_LENGTH,
    ORG_PREFIX,
    PLACEHOLDERS,
    USER_PREFIX,
    pattern_error,
)
from apps_api.kit.schemas import URL_NO_FRAGMENT_PATTERN, hint
from apps_api.outbound.urls import unsendable_reason

MAX_URL_LENGTH = 2000
_NOT_ABSOLUTE = "Must be an absolute http:// or https:// URL."


def _absolute_parts(value: str) -> SplitResult:
    """The URL's parts; ValueError unless it is an absolute http(s) URL, not padded with spaces."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(_NOT_ABSOLUTE) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or value != value.strip():
        raise ValueError(_NOT_ABSOLUTE)
    return parts


def _has_space_or_control(value: str) -> bool:
    # urlsplit() silently drops tabs and newlines: refuse them (and any control character or
    # space) so that a stored URL can never carry CR/LF into a request line or a log.
    return any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _endpoint_url(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"Must be at most {MAX_URL_LENGTH} characters.")
    parts = _absolute_parts(value)
    if _has_space_or_control(value):
        raise ValueError("Must not contain spaces or control characters.")
    if parts.username is not None or parts.password is not None:
        raise ValueError("Must not contain credentials.")
    if parts.fragment:
        raise ValueError("Must not contain a fragment.")
    # The sender's own parser has the last word: what it refuses would fail every attempt.
    reason = unsendable_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _channel_pattern(value: str) -> str:
    error = pattern_error(value)
    if error is not None:
        raise ValueError(error)
    return value


def _channel_pattern_regex() -> str:
    """`pattern_error()`'s rules as one regular expression, for the OpenAPI document."""

    def literal(text: str) -> str:
        return text.replace("{", r"\{").replace("}", r"\}")

    segment = "|".join([r"[A-Za-z0-9._~\-]+", r"\*", *(literal(p) for p in PLACEHOLDERS)])
    prefixes = "|".join(literal(prefix.rstrip("/")) for prefix in (ORG_PREFIX, USER_PREFIX))
    return f"^({literal(INSTALLATIONS_PATTERN)}|({prefixes})(/({segment}))+)$"


EndpointUrl = Annotated[
    str,
    AfterValidator(_endpoint_url),
    hint(format="uri", maxLength=MAX_URL_LENGTH, pattern=URL_NO_FRAGMENT_PATTERN),
]
ChannelPattern = Annotated[
    str,
    AfterValidator(_channel_pattern),
    hint(maxLength=MAX_PATTERN_LENGTH, pattern=_channel_pattern_regex()),
]
