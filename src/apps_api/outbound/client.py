"""The guarded HTTP client: resolve, check, then connect to the very address that was checked.

The check happens in the connection layer (an httpcore network backend), so the URL keeps
its hostname: the `Host` header, TLS SNI and certificate checks are those of the original
host, and a DNS answer that changes between check and connect (rebinding) cannot matter.
Redirects are never followed; proxies from the environment are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import select
import ssl
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

from apps_api.outbound.guard import DestinationBlocked, IPNetwork, resolve_checked

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
# What a refused destination's log entry says. The host and the addresses it resolves to go to
# the server log only: a provider reading its log entries must not learn how names resolve
# inside the service's network.
DESTINATION_NOT_ALLOWED = "Destination not allowed."
MAX_HEADERS = 100
MAX_HEADER_VALUE = 2000


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the SSRF guard allows."""

    def __init__(self, allow: Iterable[IPNetwork]) -> None:
        self._allow = tuple(allow)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await resolve_checked(host, port, self._allow)
        stream = await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return KnownSocketStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationBlocked("Unix sockets are not an outbound destination.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class KnownSocketStream(httpcore.AsyncNetworkStream):
    """A backend stream whose socket is looked up once, not on every pool assignment.

    Each time httpcore's pool assigns a request (and again when a response closes) it asks every
    idle connection whether the server closed it: `get_extra_info("is_readable")`. AnyIO answers
    through its typed-attribute lookup, rebuilt on each call, which cost the worker more CPU than
    the poll itself (bench/ANALYSIS.md). Everything else goes to the backend's stream unchanged.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")
        self._poller: typing.Any = None
        if self._socket is not None and hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(self._socket, select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's interface
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's interface
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        # TLS runs over the same socket: the wrapped stream keeps the same readiness check.
        return KnownSocketStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self._socket
        if info == "is_readable" and self._poller is not None:
            # As httpcore's own check: readable while idle means closed (or garbage) from the server.
            return bool(self._poller.poll(0))
        return self._inner.get_extra_info(info)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on the guarded network backend."""

    def __init__(self, allow: Iterable[IPNetwork], *, max_connections: int = 200) -> None:
        super().__init__(trust_env=False)
        ssl_context = httpx.create_ssl_context(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=50,
            keepalive_expiry=30,
            network_backend=GuardedBackend(allow),
        )


USER_AGENT = "apps-api-webhooks/1"


class OutboundClient:
    """Outbound requests straight through the guarded transport (its pool keeps connections alive).

    httpx's client layers are skipped on purpose: there is no cookie jar (a cookie that one
    endpoint sets must never travel to another app's endpoint on the same host), redirects are
    never followed, there is no auth and no environment proxy. What is left of a request is the
    transport's work (what skipping the client layers saved: bench/ANALYSIS.md).
    """

    def __init__(self, allow: Iterable[IPNetwork], *, connect_timeout: float, total_timeout: float) -> None:
        self.transport = GuardedTransport(allow)
        self.total_timeout = total_timeout
        self._extensions = {"timeout": httpx.Timeout(total_timeout, connect=connect_timeout).as_dict()}

    def request(self, method: str, url: str, headers: dict[str, str], content: bytes | None) -> httpx.Request:
        return httpx.Request(
            method,
            url,
            headers={"User-Agent": USER_AGENT, **headers},
            content=content,
            extensions=self._extensions,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def guarded_client(
    allow: Iterable[IPNetwork], *, connect_timeout: float = 5.0, total_timeout: float = 15.0
) -> OutboundClient:
    """The client for outbound requests: SSRF-guarded, no redirects, no cookies, no environment proxies."""
    return OutboundClient(allow, connect_timeout=connect_timeout, total_timeout=total_timeout)


@dataclass
class Outcome:
    """What one attempt got: a response (status, headers, first 4 KiB of body) or an error."""

    status_code: int | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    duration_ms: int = 0
    error: str | None = None

    def header(self, name: str) -> str | None:
        return (self.headers or {}).get(name.lower())


def _headers(response: httpx.Response) -> dict[str, str]:
    collected: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        if key not in collected and len(collected) >= MAX_HEADERS:
            continue
        joined = f"{collected[key]}, {value}" if key in collected else value
        collected[key] = joined[:MAX_HEADER_VALUE]
    return collected


async def send(
    client: OutboundClient,
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    content: bytes | None = None,
    total_timeout: float = 15.0,
) -> Outcome:
    """One request under a total deadline; reads at most 4 KiB of the body, never the rest."""
    started = time.monotonic()
    outcome = Outcome()
    try:
        async with asyncio.timeout(total_timeout):
            response = await client.transport.handle_async_request(
                client.request(method, url, headers, content)
            )
            try:
                outcome.status_code = response.status_code
                outcome.headers = _headers(response)
                outcome.body = await _body_start(response)
            finally:
                await response.aclose()
    except Exception as error:
        outcome.error = _failure(error, total_timeout)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


async def _body_start(response: httpx.Response) -> str:
    """The first 4 KiB of the body (the rest is never read)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) >= MAX_BODY_BYTES:
            break
    return bytes(body[:MAX_BODY_BYTES]).decode("utf-8", errors="replace")


def _failure(error: Exception, total_timeout: float) -> str:
    """The reason a request got no (whole) response, as its log entry shows it."""
    if isinstance(error, DestinationBlocked):
        logger.warning("outbound request refused: %s", error)
        return DESTINATION_NOT_ALLOWED
    if isinstance(error, TimeoutError):
        return f"Timed out after {total_timeout:g} s (total)."
    if isinstance(error, httpx.ConnectTimeout):
        return "Timed out connecting."
    if isinstance(error, httpx.TimeoutException):
        return f"Timed out after {total_timeout:g} s."
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, OSError):
        return f"Connection error: {error}"
    if isinstance(error, httpx.InvalidURL):
        # URLs are checked when written (outbound/urls.py); one that slipped in fails its attempt.
        return f"Invalid URL: {error}"
    return f"Request failed: {type(error).__name__}"
