"""Write-time check that a URL can be sent: parsed by the very parser that later sends it (httpx's).

`urllib.parse.urlsplit` accepts URLs httpx refuses (`http://0177.0.0.1/`, an octal IPv4 host), so a
URL checked with it alone could be stored and then fail every attempt. Checking with `httpx.URL`
at write time keeps such URLs out of the database.
"""

from __future__ import annotations

import re

import httpx

# The URLs of most apps: a DNS name of ASCII labels (no IP literal, no punycode, the last label a
# word), an optional port, and a path and query of unreserved characters. httpx sends every one
# of them (tests/webhooks/test_url_parsing.py compares the two on a corpus), and parsing them with
# httpx.URL cost more CPU than the rest of an app's validation (bench/ANALYSIS.md): they skip it.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(
    rf"https?://(?!.*--)(?:{_LABEL}\.)*[A-Za-z]{{2,63}}(?::([1-9][0-9]{{0,4}}))?"
    r"(?:/[A-Za-z0-9._~/-]*)?(?:\?[A-Za-z0-9._~/&=-]*)?"
)


def unsendable_reason(url: str) -> str | None:
    """Why httpx could not send a request to `url`, or None when it can."""
    plain = _PLAIN.fullmatch(url)
    if plain is not None and (plain[1] is None or int(plain[1]) < 65536):
        return None
    return httpx_unsendable_reason(url)


def httpx_unsendable_reason(url: str) -> str | None:
    """`unsendable_reason` as httpx's parser alone decides it (the slow path, and the reference)."""
    try:
        parsed = httpx.URL(url)
        # `host` decodes punycode when asked: an invalid one (`xn--a.com`) raises here, not above.
        host, port = parsed.host, parsed.port
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        return f"Not a URL this service can send requests to ({error})."
    if parsed.scheme not in ("http", "https") or not host:
        return "Must be an absolute http:// or https:// URL."
    if port is not None and not 0 < port < 65536:
        return "The port must be between 1 and 65535."
    return None
