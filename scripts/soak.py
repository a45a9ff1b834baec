"""Soak test: mixed API load plus webhook traffic to misbehaving receivers, for --duration seconds.

    .venv/bin/python scripts/soak.py --duration 600            # embedded PostgreSQL and Redis
    .venv/bin/python scripts/soak.py --duration 90 \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/0                   # a database of its own on that server

Real processes on 127.0.0.1: one API (`apps-api serve --no-worker`), two workers (`apps-api
worker`), HTTP receivers that randomly answer 2xx, 500, 503, 429 with `Retry-After`, hang past
the webhook timeout or drop the connection (an attempt after the second always succeeds, so
every delivery must arrive), and one receiver that always answers 410 (each of its deliveries
must be tried exactly once). Meanwhile API clients list, create, change and delete apps and
install and uninstall them, and a publisher sends event batches to the ingestion endpoint.

Then it drains and checks: every expected delivery arrived (counted at the receivers), 410s were
not retried, no delivery is left pending, no API answer was a 5xx or a status the OpenAPI schema
does not document, no ERROR or traceback in any process's log, and the RSS of the API and worker
processes did not keep growing. Exit status 0 only if all of that holds; a JSON report goes to
stdout (and to --report).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

WEBHOOK_TIMEOUT = 3.0
HANG_SECONDS = 5.0  # longer than the webhook timeout: the attempt times out
RETRY_SCHEDULE = "0.5,1,1,2,2,3"  # 7 attempts; a flaky receiver accepts the third at the latest


# --- receivers ---------------------------------------------------------------------------------


class Receiver:
    """A threaded HTTP server; `gone` answers 410 always, otherwise randomly for two attempts."""

    def __init__(self, name: str, *, gone: bool = False, seed: int = 0) -> None:
        self.name = name
        self.gone = gone
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()  # webhook-id -> requests
        self.successes: dict[str, str] = {}  # webhook-id -> resource_id
        self.resources: Counter[str] = Counter()  # resource_id -> requests (410 receiver)
        self.outcomes: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                message_id = self.headers.get("webhook-id", "")
                resource_id = json.loads(body).get("resource_id", "") if body else ""
                with receiver.lock:
                    receiver.attempts[message_id] += 1
                    attempt = receiver.attempts[message_id]
                    receiver.resources[resource_id] += 1
                    choice = receiver.choose(attempt)
                    receiver.outcomes[choice] += 1
                    if choice == "ok":
                        receiver.successes[message_id] = resource_id
                if choice == "hang":
                    time.sleep(HANG_SECONDS)
                    choice = "ok-too-late"
                if choice == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers = {
                    "ok": (200, {}),
                    "ok-too-late": (200, {}),
                    "gone": (410, {}),
                    "500": (500, {}),
                    "503": (503, {"Retry-After": "1"}),
                    "429": (429, {"Retry-After": "1"}),
                }[choice]
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def choose(self, attempt: int) -> str:
        if self.gone:
            return "gone"
        if attempt >= 3:
            return "ok"
        return self.random.choices(
            ["ok", "500", "503", "429", "hang", "drop"], weights=[50, 15, 5, 10, 10, 10]
        )[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process (and nothing else), from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "apps_api", *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        return self.process.returncode


# --- the load ----------------------------------------------------------------------------------


class Stats:
    def __init__(self, documented: dict[tuple[str, str], set[int]]) -> None:
        self.documented = documented
        self.statuses: Counter[str] = Counter()
        self.undocumented: Counter[str] = Counter()
        self.transport_errors: Counter[str] = Counter()

    def record(self, method: str, template: str, response: httpx.Response) -> None:
        key = f"{method} {template} {response.status_code}"
        self.statuses[key] += 1
        allowed = self.documented.get((method, template), set())
        if response.status_code >= 500 or response.status_code not in allowed:
            self.undocumented[key] += 1


def documented_statuses(schema: dict[str, Any]) -> dict[tuple[str, str], set[int]]:
    return {
        (method.upper(), path): {int(code) for code in operation.get("responses", {})}
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


async def call(
    client: httpx.AsyncClient, stats: Stats, method: str, template: str, path: str, **kwargs: Any
) -> httpx.Response | None:
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        stats.transport_errors[f"{method} {template} {type(exc).__name__}"] += 1
        return None
    stats.record(method, template, response)
    return response


APP_BODY = {
    "name": "Soak churn",
    "description": "Created, changed, installed and deleted by the soak test",
    "is_app_user_required": True,
    "app_user_default_first_name": "Soak",
    "app_user_default_last_name": "Bot",
    "terms_of_service_url": "https://soak.example.com/tos",
    "privacy_policy_url": "https://soak.example.com/privacy",
}
ORGS = "/api/v5/orgs/{organization_id}"


async def api_client_loop(
    client: httpx.AsyncClient, stats: Stats, provider: dict[str, str], installers: list[dict[str, str]],
    app_ids: list[str], stop: asyncio.Event, seed: int,
) -> None:  # fmt: skip
    """One API user: mostly reads, sometimes a full app life cycle (create, patch, install, delete)."""
    rng = random.Random(seed)
    while not stop.is_set():
        roll = rng.random()
        installer = rng.choice(installers)
        await asyncio.sleep(0.1)
        if roll < 0.7:
            await _read(client, stats, rng, roll, provider, installer, app_ids)
        else:
            await _app_life_cycle(client, stats, rng, provider)


async def _read(
    client: httpx.AsyncClient, stats: Stats, rng: random.Random, roll: float, provider: dict[str, str],
    installer: dict[str, str], app_ids: list[str],
) -> None:  # fmt: skip
    """One read, by `roll` (< 0.7): the owned apps, an installer's installations, a log, the public apps."""
    owner = {"Authorization": f"Token {provider['token']}"}
    as_installer = {"Authorization": f"Token {installer['token']}"}
    org = provider["organization_id"]
    if roll < 0.25:
        await call(
            client, stats, "GET", ORGS + "/owned_apps", f"/api/v5/orgs/{org}/owned_apps", headers=owner
        )
    elif roll < 0.45:
        iorg = installer["organization_id"]
        await call(
            client, stats, "GET", ORGS + "/app_installations", f"/api/v5/orgs/{iorg}/app_installations",
            headers=as_installer, params={"page_size": 50},
        )  # fmt: skip
    elif roll < 0.6:
        app_id = rng.choice(app_ids)
        await call(
            client, stats, "GET", ORGS + "/owned_apps/{app_id}/webhook_log_entries",
            f"/api/v5/orgs/{org}/owned_apps/{app_id}/webhook_log_entries",
            headers=owner, params={"status": rng.choice(["failed", "successful"])},
        )  # fmt: skip
    else:
        await call(client, stats, "GET", "/api/v5/public_apps", "/api/v5/public_apps", headers=as_installer)


async def _app_life_cycle(
    client: httpx.AsyncClient, stats: Stats, rng: random.Random, provider: dict[str, str]
) -> None:
    """Create an app, change it, install it in its own organization, maybe uninstall it, delete it."""
    owner = {"Authorization": f"Token {provider['token']}"}
    org = provider["organization_id"]
    created = await call(
        client, stats, "POST", ORGS + "/owned_apps", f"/api/v5/orgs/{org}/owned_apps",
        headers=owner, json={**APP_BODY, "is_available_to_anyone": True},
    )  # fmt: skip
    if created is None or created.status_code != 201:
        return
    app_id = created.json()["id"]
    owned = f"/api/v5/orgs/{org}/owned_apps/{app_id}"
    await call(
        client, stats, "PATCH", ORGS + "/owned_apps/{app_id}", owned,
        headers=owner, json={"description": f"changed {rng.random()}"},
    )  # fmt: skip
    # Not approved: not public, so only the owner itself may install it.
    installed = await call(
        client, stats, "POST", ORGS + "/app_installations", f"/api/v5/orgs/{org}/app_installations",
        headers=owner, json={"app_id": app_id},
    )  # fmt: skip
    if installed is not None and installed.status_code == 201 and rng.random() < 0.5:
        installation = installed.json()["id"]
        await call(
            client, stats, "DELETE", ORGS + "/app_installations/{installation_id}",
            f"/api/v5/orgs/{org}/app_installations/{installation}", headers=owner,
        )  # fmt: skip
    await call(client, stats, "DELETE", ORGS + "/owned_apps/{app_id}", owned, headers=owner)


async def publisher_loop(
    client: httpx.AsyncClient, stats: Stats, ingest_key: str, installers: list[dict[str, str]],
    published: list[str], stop: asyncio.Event, rate: float,
) -> None:  # fmt: skip
    """Event batches (1-5 events, each with a unique resource id) at about `rate` events a second."""
    rng = random.Random(7)
    counter = 0
    headers = {"Authorization": f"Bearer {ingest_key}"}
    while not stop.is_set():
        batch: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 5)):
            counter += 1
            org = rng.choice(installers)["organization_id"]
            batch.append(
                {
                    "organization_id": org,
                    "channel": f"/api/v5/orgs/{org}/chats",
                    "action": rng.choice(["added", "changed", "removed"]),
                    "resource_id": f"chat-{counter}",
                    "resource": {"id": f"chat-{counter}", "topic": "soak"},
                    # Chats are heard by installations granted `reports` (the soak's grant them).
                    "required_scope": "reports",
                }
            )
        response = await call(
            client, stats, "POST", "/internal/v1/events", "/internal/v1/events", headers=headers,
            json={"events": batch},
        )  # fmt: skip
        if response is not None and response.status_code == 202:
            published.extend(event["resource_id"] for event in batch)
        await asyncio.sleep(len(batch) / rate)


async def sampler_loop(processes: list[Process], samples: dict[str, list[int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for process in processes:
            value = rss_kib(process.process.pid)
            if value is not None:
                samples[process.name].append(value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


def growth(values: list[int]) -> dict[str, float]:
    """RSS of the first and last third after a warm-up fifth; growth in percent and MiB."""
    steady = values[len(values) // 5 :]
    if len(steady) < 6:
        return {"first_mib": 0.0, "last_mib": 0.0, "growth_percent": 0.0, "growth_mib": 0.0}
    third = len(steady) // 3
    first, last = statistics.median(steady[:third]), statistics.median(steady[-third:])
    return {
        "first_mib": round(first / 1024, 1),
        "last_mib": round(last / 1024, 1),
        "max_mib": round(max(values) / 1024, 1),
        "growth_percent": round((last - first) / first * 100, 1),
        "growth_mib": round((last - first) / 1024, 1),
    }


# --- setup -------------------------------------------------------------------------------------


async def seed(env: dict[str, str], installers: int) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A provider organization and installer organizations, each with a user and token."""
    os.environ.update(env)
    from apps_api.kit.db import create_engine, create_sessionmaker
    from apps_api.platform import service
    from apps_api.settings import get_settings

    get_settings.cache_clear()
    engine = create_engine(get_settings())
    made: list[dict[str, str]] = []
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for index in range(installers + 1):
                org = await service.create_organization(
                    session=session, name=f"Soak {index}", features=["apps", "app_provider"]
                )
                user = await service.create_user(
                    session=session, organization_id=org.id, permissions=["settings", "users", "reports"]
                )
                _, key = await service.create_token(session=session, user_id=user.id)
                made.append({"organization_id": str(org.id), "token": key})
    finally:
        await engine.dispose()
    return made[0], made[1:]


async def setup_apps(
    client: httpx.AsyncClient, provider: dict[str, str], installers: list[dict[str, str]],
    receivers: list[Receiver], gone: Receiver,
) -> list[str]:  # fmt: skip
    """Two public apps with webhooks on the receivers, installed in every installer organization."""
    owner = {"Authorization": f"Token {provider['token']}"}
    org = provider["organization_id"]
    subscription = {
        "channel_pattern": "/api/v5/orgs/{organization_id}/chats",
        "is_additions_subscribed": True,
        "is_changes_subscribed": True,
        "is_removals_subscribed": True,
    }
    app_ids = []
    for index, urls in enumerate([[receivers[0].url, receivers[1].url], [receivers[2].url, gone.url]]):
        created = await client.post(
            f"/api/v5/orgs/{org}/owned_apps",
            json={**APP_BODY, "name": f"Soak app {index}", "is_available_to_anyone": True},
            headers=owner,
        )
        created.raise_for_status()
        app_id = created.json()["id"]
        app_ids.append(app_id)
        for url in urls:
            hook = await client.post(
                f"/api/v5/orgs/{org}/owned_apps/{app_id}/webhooks",
                json={"endpoint_url": url, "channel_subscriptions": [subscription]},
                headers=owner,
            )
            hook.raise_for_status()
    return app_ids


async def approve_and_install(
    env: dict[str, str], app_ids: list[str], installers: list[dict[str, str]]
) -> None:
    from apps_api.installations.service import install_app
    from apps_api.kit.db import create_engine, create_sessionmaker
    from apps_api.models import App, Organization
    from apps_api.settings import get_settings

    engine = create_engine(get_settings())
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for app_id in app_ids:
                app = await session.get(App, uuid.UUID(app_id))
                assert app is not None
                app.is_approved = True
            await session.flush()
            for installer in installers:
                organization = await session.get(Organization, uuid.UUID(installer["organization_id"]))
                assert organization is not None
                for app_id in app_ids:
                    app = await session.get(App, uuid.UUID(app_id))
                    assert app is not None
                    await install_app(
                        granter=None,
                        session=session,
                        organization=organization,
                        app=app,
                        actor=None,
                        allowed_scopes=["reports"],
                    )
    finally:
        await engine.dispose()


async def unfinished_deliveries() -> int:
    from sqlalchemy import func, select

    from apps_api.kit.db import create_engine
    from apps_api.models import Event, OutboundDelivery
    from apps_api.settings import get_settings

    engine = create_engine(get_settings())
    try:
        async with engine.connect() as connection:
            pending = await connection.scalar(
                select(func.count())
                .select_from(OutboundDelivery)
                .where(OutboundDelivery.status.in_(("pending", "started")))
            )
            undispatched = await connection.scalar(
                select(func.count()).select_from(Event).where(Event.dispatched_at.is_(None))
            )
    finally:
        await engine.dispose()
    return int(pending or 0) + int(undispatched or 0)


async def unfinished_details() -> list[str]:
    """The deliveries and events still unfinished (for the report)."""
    from sqlalchemy import select

    from apps_api.kit.db import create_engine
    from apps_api.models import Event, OutboundDelivery
    from apps_api.settings import get_settings

    engine = create_engine(get_settings())
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(
                        OutboundDelivery.resource_id,
                        OutboundDelivery.endpoint_url,
                        OutboundDelivery.status,
                        OutboundDelivery.attempt_count,
                        OutboundDelivery.next_attempt_at,
                        OutboundDelivery.locked_until,
                    )
                    .where(OutboundDelivery.status.in_(("pending", "started")))
                    .limit(20)
                )
            ).all()
            events = (
                await connection.execute(
                    select(Event.id, Event.resource_id, Event.created_at)
                    .where(Event.dispatched_at.is_(None))
                    .limit(20)
                )
            ).all()
    finally:
        await engine.dispose()
    return [str(tuple(row)) for row in rows] + [f"undispatched event {tuple(row)}" for row in events]


# --- main --------------------------------------------------------------------------------------


@dataclass
class Load:
    """What the load phase left: the events published, the RSS samples and how long it ran."""

    published: list[str]
    samples: dict[str, list[int]]
    seconds: float


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)


async def run_load(
    args: argparse.Namespace, env: dict[str, str], client: httpx.AsyncClient, stats: Stats,
    provider: dict[str, str], installers: list[dict[str, str]], app_ids: list[str], processes: list[Process],
) -> Load:  # fmt: skip
    """API clients, the publisher and the RSS sampler side by side for `--duration` seconds."""
    stop = asyncio.Event()
    published: list[str] = []
    samples: dict[str, list[int]] = defaultdict(list)
    started = time.monotonic()
    loops = [
        api_client_loop(client, stats, provider, installers, app_ids, stop, seed=i)
        for i in range(args.clients)
    ]
    ingest_key = env["APPS_API_INGEST_SERVICE_KEY"]
    loops.append(publisher_loop(client, stats, ingest_key, installers, published, stop, args.rate))
    loops.append(sampler_loop(processes, samples, stop))
    tasks = [asyncio.create_task(loop) for loop in loops]
    await asyncio.sleep(args.duration)
    stop.set()
    await asyncio.gather(*tasks)
    return Load(published, samples, time.monotonic() - started)


async def drain(within: float) -> dict[str, Any]:
    """Wait, `within` seconds at most, for every delivery to finish (successful, or failed at the 410)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await unfinished_deliveries() == 0:
            break
        await asyncio.sleep(1)
    drain_seconds = time.monotonic() - started
    left = await unfinished_deliveries()
    return {
        "drain_seconds": round(drain_seconds, 1),
        "left_unfinished": left,
        "left_details": await unfinished_details() if left else [],
    }


def delivery_findings(receivers: list[Receiver], gone: Receiver, published: list[str]) -> dict[str, Any]:
    """What the receivers saw of the published events: lost, retried 410s, never tried."""
    expected = set(published)
    lost = {receiver.name: sorted(expected - set(receiver.successes.values())) for receiver in receivers}
    return {
        "events_published": len(published),
        "deliveries_expected": len(published) * (len(receivers) + 1),
        "flaky_receivers": {
            r.name: {
                "requests": sum(r.attempts.values()),
                "delivered": len(set(r.successes.values())),
                "outcomes": dict(r.outcomes),
            }
            for r in receivers
        },
        "gone_receiver": {
            "requests": sum(gone.attempts.values()),
            "retried": sum(1 for count in gone.attempts.values() if count > 1),
        },
        "lost": {name: len(ids) for name, ids in lost.items()},
        "lost_examples": {name: ids[:20] for name, ids in lost.items() if ids},
        "gone_never_tried": len(expected - set(gone.resources)),
    }


def log_problems(processes: list[Process]) -> dict[str, list[str]]:
    """The first ten ERROR, CRITICAL or traceback lines of each process's log."""
    problems = {}
    for process in processes:
        lines = [
            line
            for line in process.output().splitlines()
            if " ERROR " in line or "Traceback" in line or " CRITICAL " in line
        ]
        if lines:
            problems[process.name] = lines[:10]
    return problems


def failures(report: dict[str, Any], stats: Stats, unbounded: list[str]) -> list[str]:
    found = []
    if any(report["lost"].values()) or report["gone_never_tried"] or report["left_unfinished"]:
        found.append("lost or unfinished deliveries")
    if report["gone_receiver"]["retried"]:
        found.append("410 answers were retried")
    if stats.undocumented or stats.transport_errors:
        found.append("undocumented API errors")
    if report["log_errors"]:
        found.append("errors in process logs")
    if unbounded:
        found.append(f"memory kept growing: {unbounded}")
    if not report["events_published"]:
        found.append("no event was published")
    return found


async def soak(args: argparse.Namespace, env: dict[str, str], folder: Path) -> dict[str, Any]:
    provider, installers = await seed(env, args.organizations)
    receivers = [Receiver(f"flaky-{i}", seed=i) for i in range(3)]
    gone = Receiver("gone", gone=True)
    port = free_port()
    api = Process("api", ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)], env, folder)
    workers = [Process(f"worker-{i}", ["worker"], env, folder) for i in range(args.workers)]
    processes = [api, *workers]
    report: dict[str, Any] = {"duration_seconds": args.duration, "workers": args.workers}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_ready(client)
            stats = Stats(documented_statuses((await client.get("/openapi.json")).json()))
            app_ids = await setup_apps(client, provider, installers, receivers, gone)
            await approve_and_install(env, app_ids, installers)
            load = await run_load(args, env, client, stats, provider, installers, app_ids, processes)
            drained = await drain(args.drain_timeout)
            report["now"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        memory = {name: growth(values) for name, values in load.samples.items()}
        unbounded = sorted(
            name
            for name, value in memory.items()
            if value["growth_percent"] > args.max_growth_percent and value["growth_mib"] > args.max_growth_mib
        )
        report["load_seconds"] = round(load.seconds, 1)
        report["drain_seconds"] = drained.pop("drain_seconds")
        report.update(delivery_findings(receivers, gone, load.published))
        report.update(drained)
        report.update(
            {
                "api_requests": sum(stats.statuses.values()),
                "api_statuses": dict(sorted(stats.statuses.items())),
                "undocumented_responses": dict(stats.undocumented),
                "transport_errors": dict(stats.transport_errors),
                "log_errors": log_problems(processes),
                "rss": memory,
            }
        )
        report["failures"] = failures(report, stats, unbounded)
        report["ok"] = not report["failures"]
        return report
    finally:
        for process in processes:
            process.stop()
        for receiver in [*receivers, gone]:
            receiver.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--database-url", help="a PostgreSQL server (a database of its own is created)")
    parser.add_argument("--redis-url", help="a Redis server (default: embedded)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=3, help="concurrent API clients")
    parser.add_argument("--organizations", type=int, default=5, help="installer organizations")
    parser.add_argument("--rate", type=float, default=2.0, help="events published per second")
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--max-growth-percent", type=float, default=25.0)
    parser.add_argument("--max-growth-mib", type=float, default=20.0)
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    parser.add_argument("--log-level", default="WARNING", help="of the API and worker processes")
    args = parser.parse_args()

    from apps_api.embedded import start_postgres, start_redis
    from apps_api.migrate import upgrade

    folder = Path(tempfile.mkdtemp(prefix="apps-api-soak-"))
    postgres = redis_process = None
    database = None
    admin_url = None
    try:
        if args.database_url:
            import asyncpg
            from sqlalchemy.engine import make_url

            database = f"apps_api_soak_{secrets.token_hex(4)}"
            admin_url = args.database_url

            async def execute(sql: str) -> None:
                connection = await asyncpg.connect(admin_url)
                try:
                    await connection.execute(sql)
                finally:
                    await connection.close()

            asyncio.run(execute(f'CREATE DATABASE "{database}"'))
            database_url = (
                make_url(args.database_url).set(database=database).render_as_string(hide_password=False)
            )
        else:
            postgres, database_url = start_postgres(folder / "postgres")
        if args.redis_url:
            redis_url = args.redis_url
        else:
            redis_process, redis_url = start_redis(folder / "redis")
        upgrade(database_url)
        from apps_api.kit.crypto import new_encryption_key

        env = {
            **os.environ,
            "APPS_API_DATABASE_URL": database_url,
            "APPS_API_REDIS_URL": redis_url,
            "APPS_API_SECRET_KEY": secrets.token_urlsafe(32),
            # App secrets at rest (kit/crypto.py): a fresh database, so a fresh key.
            "APPS_API_ENCRYPTION_KEYS": new_encryption_key(),
            "APPS_API_QUEUE_NAME": f"apps_api_soak:{secrets.token_hex(4)}",
            "APPS_API_OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8",
            "APPS_API_INGEST_SERVICE_KEY": secrets.token_urlsafe(24),
            "APPS_API_WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE,
            "APPS_API_WEBHOOK_TIMEOUT": str(WEBHOOK_TIMEOUT),
            "APPS_API_WEBHOOK_CONNECT_TIMEOUT": "1",
            "APPS_API_WEBHOOK_SWEEP_INTERVAL_SECONDS": "1",
            "APPS_API_LOG_LEVEL": args.log_level,
            "PYTHONPATH": str(ROOT / "src"),
        }
        report = asyncio.run(soak(args, env, folder))
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)
        if postgres is not None:
            postgres._cleanup()
        if database is not None and admin_url is not None:
            import asyncpg

            async def drop() -> None:
                connection = await asyncpg.connect(admin_url)
                try:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                finally:
                    await connection.close()

            asyncio.run(drop())
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
