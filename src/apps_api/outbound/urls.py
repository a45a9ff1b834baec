"""Write-time check that a URL can be sent: parsed by the very parser that later sends it (httpx's).

`urllib.parse.urlsplit` accepts URLs httpx refuses (`http://0177.0.0.1/`, an octal IPv4 host), so a
URL checked with it alone could be stored and then fail every attempt. Checking with `httpx.URL`
at write time keeps such URLs out of the database.
"""

from __future__ import annotations

import httpx


def unsendable_reason(url: str) -> str | None:
    """Why httpx could not send a request to `url`, or None when it can."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        return f"Not a URL this service can send requests to ({error})."
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "Must be an absolute http:// or https:// URL."
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "The port must be between 1 and 65535."
    return None
