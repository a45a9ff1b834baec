"""kit/pagination._page_url: its direct path gives exactly Starlette's URL (`include_query_params`)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from apps_api.kit import pagination

KEY = "k" * 40
CURSOR = pagination._Cursor(
    datetime(2026, 12, 7, 8, 9, 10, 123456, tzinfo=UTC), uuid.uuid4(), False, "-created_at"
)


def _request(path: str, query: bytes, base: str | None) -> Request:
    settings = SimpleNamespace(public_base_url=base, secret_key=SimpleNamespace(encode=lambda: KEY.encode()))
    app = SimpleNamespace(state=SimpleNamespace(settings=settings))
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"api.test:8000")],
        "server": ("127.0.0.1", 8000),
        "app": app,
    }
    return Request(scope)


def _starlettes(request: Request) -> str:
    """What `_page_url` gave before its direct path (the reference)."""
    base = request.app.state.settings.public_base_url
    url = request.url.include_query_params(cursor=pagination.encode_cursor(CURSOR, KEY.encode()))
    if base:
        return str(base.rstrip("/") + url.path + ("?" + url.query if url.query else ""))
    return str(url)


PATHS = [
    "/api/v5/orgs/5f0c7a4e-3a3e-4b59-9d7f-0a1b2c3d4e5f/owned_apps",
    "/api/v5/public_apps",
    "/api/v5/orgs/x/owned_apps/y/webhook_log_entries",
    "/api/v5/a b",  # not plain: Starlette's way
    "/api/v5/a?b",
    "/api/v5/a#b",
    "/api/v5/é",
    "/api/v5/a%2Fb",
    "/api/v5/a\tb",
]
QUERIES = [
    b"",
    b"page_size=5",
    b"cursor=old&page_size=5",
    b"page_size=5&cursor=old&cursor=older&ordering=created_at",
    b"status=failed&status=pending&q=",
    b"a=1&&b=&c",
    b"name=caf%C3%A9+bar&x=%2B%26",
    b"plus=a+b&space=a%20b",
    b"q=%23fragment",
    b"q=a#b",
    b"=value&key",
    b"caf\xc3\xa9=1",
]
BASES = ["https://apps.example.com", "https://apps.example.com/", "http://127.0.0.1:8000/prefix", None]


@pytest.mark.parametrize("base", BASES)
def test_every_link_is_starlettes(base: str | None) -> None:
    compared = direct = 0
    for path in PATHS:
        for query in QUERIES:
            request = _request(path, query, base)
            link = pagination._page_url(request, CURSOR)
            # The direct path builds no URL object (Starlette caches the request's as `_url`):
            # taken for a plain path and query under a base URL, and only then.
            took_direct = not hasattr(request, "_url")
            plain = base is not None and path in PATHS[:3] and b"#" not in query
            assert took_direct == plain, (path, query, base)
            assert link == _starlettes(request), (path, query, base)
            compared += 1
            direct += took_direct
    assert compared == len(PATHS) * len(QUERIES)
    assert direct == (0 if base is None else 3 * (len(QUERIES) - 1))


def test_generated_queries_give_starlettes_links() -> None:
    alphabet = "abc=&+%20%2B%3D%26é~_-.#?/"
    rng = random.Random(2026)
    for _ in range(3000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))).encode()
        request = _request(PATHS[0], query, BASES[0])
        assert pagination._page_url(request, CURSOR) == _starlettes(request), query


def test_the_cursor_signature_is_the_hmac_it_was() -> None:
    import hashlib
    import hmac

    payload = b'["2026-12-07T08:09:10.123456+00:00","x","n","-created_at"]'
    old = hmac.new(KEY.encode(), b"cursor:" + payload, hashlib.sha256).digest()[:16]
    assert pagination._sign(payload, KEY.encode()) == old
