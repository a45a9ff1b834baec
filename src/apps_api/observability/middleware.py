"""Pure ASGI middleware: request ids, access logs, metrics, body size and content type limits."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps_api.observability.context import request_id_var
from apps_api.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("apps_api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_JSON_PREFIXES = ("/api/", "/internal/")


# Request ids need to be unique, not secret: a random prefix, the process id (forked workers
# share the prefix) and a counter, 32 hex characters like a UUID's. No system call, where
# uuid4() reads the kernel's random source on every request.
_REQUEST_ID_PREFIX = secrets.token_hex(6)
_request_numbers = itertools.count()


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{os.getpid() & 0xFFFFFFFF:08x}{next(_request_numbers) & 0xFFFFFFFFFFFF:012x}"


@functools.cache
def _request_counter(method: str, route: str, status: int) -> Any:
    # labels() validates and locks on every call; the children of a label set never change.
    return HTTP_REQUESTS.labels(method, route, str(status))


@functools.cache
def _latency_histogram(method: str, route: str) -> Any:
    return HTTP_LATENCY.labels(method, route)


class BodyTooLarge(BaseException):
    """A BaseException so that body parsers which catch Exception cannot turn it into a 400."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, status: int, detail: str, request_id: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Tags every request with an id, logs and measures it, and refuses oversized or non-JSON bodies."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else _new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        method = scope["method"]
        try:
            refusal = self._refuse(scope)
            if refusal is not None:
                status = refusal[0]
                await _send_error(send, *refusal, request_id)
                return
            received = 0
            limit = self.max_body_bytes

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge
                return message

            response_started = False

            async def tagged_send(message: Message) -> None:
                nonlocal status, response_started
                if message["type"] == "http.response.start":
                    status = message["status"]
                    response_started = True
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                await send(message)

            try:
                await self.app(scope, limited_receive, tagged_send)
            except BodyTooLarge:
                if response_started:
                    raise
                status = 413
                await _send_error(send, 413, f"Request body exceeds {limit} bytes.", request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            _request_counter(method, route, status).inc()
            _latency_histogram(method, route).observe(elapsed)
            logger.info(
                "%s %s %s %.1fms",
                method,
                route if route != "<unmatched>" else scope.get("path", ""),
                status,
                elapsed * 1000,
            )
            request_id_var.reset(token)

    def _refuse(self, scope: Scope) -> tuple[int, str] | None:
        """What refuses the request before it runs: its declared length, or a body that is not JSON."""
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body_bytes:
                    return 413, f"Request body exceeds {self.max_body_bytes} bytes."
            except ValueError:
                return 400, "Invalid Content-Length header."
        if scope["method"] in _BODY_METHODS and scope.get("path", "").startswith(_JSON_PREFIXES):
            return _media_type_refusal(scope, length)
        return None


def _media_type_refusal(scope: Scope, length: str | None) -> tuple[int, str] | None:
    """415 for a request to the JSON API whose body is not JSON."""
    has_body = (length is not None and length != "0") or _header(scope, b"transfer-encoding") is not None
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if has_body and not (content_type == "application/json" or content_type.endswith("+json")):
        return 415, "Unsupported media type: send `Content-Type: application/json`."
    return None
