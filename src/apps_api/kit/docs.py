"""The documentation pages (Swagger UI at /docs, ReDoc at /redoc), served with no outside network.

`fastapi-offline` ships Swagger UI's and ReDoc's assets and serves them from this service
(`STATIC_URL`), so the pages render on a machine without internet access. The pages get a
Content-Security-Policy allowing this origin only: their inline scripts by hash, inline styles
(both UIs set style attributes), `data:` images (Swagger UI's icons) and `blob:` workers
(ReDoc's search).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
STATIC_URL = "/static-offline-docs"
# Swagger UI would otherwise show a badge fetched from an outside validator.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_POLICY = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def create_documented_app(**kwargs: Any) -> FastAPI:
    """A FastAPI application whose /docs and /redoc use the assets the service serves itself."""
    app = FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
        static_url=STATIC_URL,
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        **kwargs,
    )
    app.add_middleware(DocsPolicyMiddleware)
    return app


def content_security_policy(html: bytes) -> str:
    """The policy of a documentation page: this origin, plus the page's own inline scripts."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return _POLICY.format(hashes=hashes)


class DocsPolicyMiddleware:
    """Adds the Content-Security-Policy to the two documentation pages (small HTML, buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in (DOCS_URL, REDOC_URL):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                assert start is not None
                headers = [
                    (name, value)
                    for name, value in start.get("headers", [])
                    if name.lower() != b"content-security-policy"
                ]
                headers.append((b"content-security-policy", content_security_policy(bytes(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, buffered)
