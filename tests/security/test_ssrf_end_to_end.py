"""The SSRF guard end to end: the guarded client, real sockets, and a DNS answer that changes.

Nothing here ever sends a packet beyond loopback. Every TCP connect of httpcore goes through
`anyio.connect_tcp`, which the `tripwire` fixture replaces for the test: it records what it was
asked to reach and opens a real socket only to a loopback address; anything else is an OSError.
So a guard that let 169.254.169.254 through shows up as a recorded attempt, not as traffic.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from apps_api.outbound.client import DESTINATION_NOT_ALLOWED, Outcome, guarded_client, send
from apps_api.outbound.guard import IPNetwork, parse_networks
from tests.fixtures.webhooks import receivers

LOOPBACK_ALLOWED = parse_networks("127.0.0.0/8")  # the test suite's APPS_API_OUTBOUND_ALLOW_NETWORKS


class Tripwire:
    """`anyio.connect_tcp` that records every destination and reaches loopback addresses only."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.attempts: list[str] = []

    async def __call__(self, remote_host: Any, remote_port: int, **options: Any) -> Any:
        host = str(remote_host)
        self.attempts.append(host)
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            # A name (only a broken guard hands one down): resolve it as a socket would.
            infos = socket.getaddrinfo(host, remote_port, type=socket.SOCK_STREAM)
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses or not all(address.is_loopback for address in addresses):
            raise OSError(f"tripwire: the tests never connect to {host} ({addresses})")
        return await self.real(str(addresses[0]), remote_port, **options)


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Tripwire:
    wire = Tripwire(anyio.connect_tcp)
    monkeypatch.setattr(anyio, "connect_tcp", wire)
    return wire


class Listener:
    """A raw TCP listener on a loopback address that records every connection it accepts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(16)
        self.port: int = self.socket.getsockname()[1]
        self.accepted: list[Any] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, peer = self.socket.accept()
            except OSError:
                return
            self.accepted.append(peer)
            connection.close()

    def close(self) -> None:
        self.socket.close()


def refused_privately(outcome: Outcome, caplog: pytest.LogCaptureFixture, *details: str) -> None:
    """The refusal's reason names neither host nor address; the server log has the detail."""
    assert outcome.status_code is None and outcome.error == DESTINATION_NOT_ALLOWED, outcome
    logged = [r.getMessage() for r in caplog.records if r.name == "apps_api.outbound.client"]
    assert any("SSRF guard" in line and all(d in line for d in details) for line in logged), logged


@pytest.fixture
def listener() -> Iterator[Listener]:
    started = Listener()
    yield started
    started.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# Non-public destinations as URLs, with the allow-list they are tried with: the suite's
# loopback allow-list for non-loopback ones; none at all for the loopback forms.
REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", LOOPBACK_ALLOWED, "link-local"),
    ("http://10.0.0.1/", LOOPBACK_ALLOWED, "private"),
    ("http://10.255.255.254/", LOOPBACK_ALLOWED, "private"),
    ("http://172.16.0.1/", LOOPBACK_ALLOWED, "private"),
    ("http://172.31.255.254/", LOOPBACK_ALLOWED, "private"),
    ("http://192.168.1.1/", LOOPBACK_ALLOWED, "private"),
    ("http://100.64.0.1/", LOOPBACK_ALLOWED, "non-public"),
    ("http://100.127.255.254/", LOOPBACK_ALLOWED, "non-public"),
    ("http://[fc00::1]/", LOOPBACK_ALLOWED, "private"),
    ("http://[fd12:3456:789a::1]/", LOOPBACK_ALLOWED, "private"),
    ("http://[fe80::1]/", LOOPBACK_ALLOWED, "link-local"),
    ("http://[::ffff:169.254.169.254]/", LOOPBACK_ALLOWED, "link-local"),
    ("http://[::ffff:a9fe:a9fe]/", LOOPBACK_ALLOWED, "link-local"),
    ("http://[::ffff:10.0.0.1]/", LOOPBACK_ALLOWED, "private"),
    ("http://[2002:a9fe:a9fe::]/", LOOPBACK_ALLOWED, "link-local"),  # 6to4 of 169.254.169.254
    # Integer and hex forms of an address: not IP literals to the URL parser, but the resolver
    # reads them as addresses (inet_aton), and the guard checks what it resolved.
    ("http://0xa9fea9fe/", LOOPBACK_ALLOWED, "link-local"),
    ("http://2852039166/", LOOPBACK_ALLOWED, "link-local"),
    ("http://0.0.0.0/", LOOPBACK_ALLOWED, "unspecified"),
    ("http://[::]/", LOOPBACK_ALLOWED, "unspecified"),
]
# Loopback forms with no allow-list: a real listener waits on the port, and must see nothing.
REFUSED_LOOPBACK = [
    ("http://127.0.0.1:{port}/", "loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
    ("http://2130706433:{port}/", "loopback"),
    ("http://0x7f000001:{port}/", "loopback"),
    ("http://127.1:{port}/", "loopback"),
    ("http://localhost:{port}/", "loopback"),
]


@pytest.mark.parametrize(("url", "allow", "label"), REFUSED)
async def test_non_public_destinations_are_refused_before_any_connect(
    tripwire: Tripwire, caplog: pytest.LogCaptureFixture, url: str, allow: tuple[IPNetwork, ...], label: str
) -> None:
    async with guarded_client(allow) as client:
        outcome = await send(client, method="POST", url=url, headers={}, content=b"{}")
    refused_privately(outcome, caplog, label)
    assert tripwire.attempts == [], f"the client tried to connect to {tripwire.attempts}"


@pytest.mark.parametrize(("template", "label"), REFUSED_LOOPBACK)
async def test_loopback_forms_are_refused_without_an_allow_list(
    tripwire: Tripwire, caplog: pytest.LogCaptureFixture, listener: Listener, template: str, label: str
) -> None:
    async with guarded_client(()) as client:
        outcome = await send(
            client, method="POST", url=template.format(port=listener.port), headers={}, content=b"{}"
        )
    refused_privately(outcome, caplog, label)
    assert tripwire.attempts == [] and listener.accepted == []


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback_is_refused_unless_allow_listed(
    tripwire: Tripwire, caplog: pytest.LogCaptureFixture
) -> None:
    six = Listener("::1")
    try:
        async with guarded_client(LOOPBACK_ALLOWED) as client:
            refused = await send(client, method="GET", url=f"http://[::1]:{six.port}/", headers={})
        refused_privately(refused, caplog, "loopback address ::1")
        assert tripwire.attempts == [] and six.accepted == []
        # The control: allow-listed, the same URL reaches the listener over a real socket.
        async with guarded_client(parse_networks("::1/128")) as client:
            reached = await send(client, method="GET", url=f"http://[::1]:{six.port}/", headers={})
        assert reached.status_code is None and reached.error is not None  # the listener hangs up
        assert tripwire.attempts == ["::1"] and len(six.accepted) == 1
    finally:
        six.close()


def test_the_url_parser_refuses_octal_looking_addresses() -> None:
    """`0177.0.0.1` is 127.0.0.1 to inet_aton; httpx refuses such a URL outright."""
    import httpx

    with pytest.raises(httpx.InvalidURL):
        httpx.URL("http://0177.0.0.1/")


async def test_the_allowed_path_uses_a_real_socket_through_the_tripwire(tripwire: Tripwire) -> None:
    """The control: an allow-listed loopback receiver is reached, so the refusals above are the guard's."""
    with receivers(None) as (receiver,):
        async with guarded_client(LOOPBACK_ALLOWED) as client:
            outcome = await send(client, method="POST", url=receiver.url, headers={}, content=b"{}")
    assert outcome.status_code == 200 and len(receiver.requests) == 1
    assert tripwire.attempts == ["127.0.0.1"]


REBIND_HOST = "rebind.apps-api.test"
# Allow-listed for this test only, so the guard passes it; a documentation address (TEST-NET-2)
# that the tripwire refuses anyway: nothing is ever sent to it.
PUBLIC_LOOKING = "198.51.100.7"


async def test_dns_rebinding_never_reaches_the_non_public_address(
    tripwire: Tripwire, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer passes the check; every later one is 127.0.0.1, which is not allowed.

    The guard connects to the address it checked, so the listener on 127.0.0.1 sees nothing. A
    client that connected by name would resolve again, get 127.0.0.1 and reach the listener.
    """
    answers: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBIND_HOST:
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = PUBLIC_LOOKING if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    async with guarded_client(parse_networks(f"{PUBLIC_LOOKING}/32")) as client:
        outcome = await send(
            client, method="POST", url=f"http://{REBIND_HOST}:{listener.port}/hook", headers={}, content=b"{}"
        )
    assert answers[:1] == [PUBLIC_LOOKING], answers
    assert listener.accepted == [], "the client reached 127.0.0.1 after the DNS answer changed"
    # It went for the checked address (which the tripwire refused), never for the name.
    assert tripwire.attempts == [PUBLIC_LOOKING], tripwire.attempts
    assert outcome.status_code is None and outcome.error is not None and "tripwire" in outcome.error
