"""outbound/urls.unsendable_reason: its fast path for plain URLs agrees with httpx's parser.

The fast path may only say "sendable" for URLs httpx sends: it is checked against httpx on a
corpus of hand-picked edge cases and of URLs generated around the fast pattern's boundaries.
"""

from __future__ import annotations

import itertools
import random

import httpx
import pytest

from apps_api.outbound.urls import _PLAIN, httpx_unsendable_reason, unsendable_reason
from tests.fixtures.factories import Tenant

EDGE_CASES = [
    "https://apps.example.com/terms",
    "https://apps.example.com",
    "https://apps.example.com/",
    "http://localhost:8080/trigger?x=1&y=2",
    "https://a.b.c.d.example.org/p/a/t/h.html?q=1",
    "https://EXAMPLE.COM/Path",
    "https://example.com:65535/",
    "https://example.com:65536/",
    "https://example.com:99999/",
    "https://example.com:0/",
    "https://example.com:01/",
    "http://0177.0.0.1/",
    "http://127.0.0.1/",
    "http://1.2.3/",
    "http://[::1]/",
    "https://xn--nxasmq6b.com/",
    "https://xn--a.com/",
    "https://ex--ample.com/",
    "https://-example.com/",
    "https://example-.com/",
    "https://exa_mple.com/",
    "https://example.com/%zz",
    "https://example.com/a b",
    "https://example.com/\t",
    "https://example.com/#frag",
    "https://user:pass@example.com/",
    "https://example.123/",
    "https://example.c/",
    "https://" + "a" * 64 + ".com/",
    "https://" + "a" * 63 + ".com/",
    "https://example." + "c" * 64 + "/",
    "ftp://example.com/",
    "https:///path",
    "https://.com/",
    "https://example..com/",
    "https://ünicode.example/",
]

_PIECES = {
    "scheme": ["http://", "https://", "HTTP://", "htp://"],
    "host": [
        "example.com",
        "a-b.example.org",
        "EXAMPLE.Com",
        "x.y",
        "1x.io",
        "9.9.9.9",
        "a--b.com",
        "a..b",
        "-a.com",
    ],
    "port": ["", ":1", ":80", ":65535", ":65536", ":00", ":123456"],
    "path": ["", "/", "/a/b", "/~user/x.y", "/a-b_c", "/a%20b", "/a b", "/ä"],
    "query": ["", "?", "?a=1", "?a=1&b=2", "?a=/x", "?a=%2F", "?a=b c"],
}


def _generated(count: int) -> list[str]:
    rng = random.Random(20261206)
    every = ["".join(parts) for parts in itertools.product(*_PIECES.values())]
    return rng.sample(every, min(count, len(every)))


@pytest.mark.parametrize("url", EDGE_CASES)
def test_the_fast_path_agrees_with_httpx_on_edge_cases(url: str) -> None:
    assert unsendable_reason(url) == httpx_unsendable_reason(url)


def test_the_fast_path_agrees_with_httpx_on_generated_urls() -> None:
    urls = _generated(3000)
    fast = [url for url in urls if _PLAIN.fullmatch(url)]
    assert len(fast) > 200  # the corpus exercises the fast path, not only the slow one
    disagreements = [url for url in urls if unsendable_reason(url) != httpx_unsendable_reason(url)]
    assert disagreements == []
    for url in fast:  # what the fast path accepts, httpx really parses to the same host and port
        if unsendable_reason(url) is None:
            parsed = httpx.URL(url)
            assert parsed.host == url.split("://", 1)[1].split("/")[0].split("?")[0].split(":")[0].lower()


def test_the_octal_host_still_goes_to_httpx_and_is_refused() -> None:
    assert _PLAIN.fullmatch("http://0177.0.0.1/") is None
    assert unsendable_reason("http://0177.0.0.1/") is not None


async def test_an_invalid_punycode_host_is_a_400_not_a_500(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """httpx decodes punycode only when asked for the host: that used to escape the check (a 500)."""
    body = {
        "name": "Punycode",
        "description": "An app with an invalid punycode host.",
        "is_app_user_required": False,
        "terms_of_service_url": "https://xn--a.com/terms",
        "privacy_policy_url": "https://apps.example.com/privacy",
    }
    response = await client.post(
        f"/api/v5/orgs/{tenant.org_id}/owned_apps", json=body, headers=tenant.headers
    )
    assert response.status_code == 400, response.text
    assert list(response.json()["errors"]) == ["terms_of_service_url"]
