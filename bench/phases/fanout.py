"""fanout: webhook deliveries per second from one worker process against a bare httpx loop.

Each round publishes `--fanout-events` events that `--fanout-webhooks` webhooks hear, waits for
every delivery at the receiver, then sends the very same signed requests with
bench/httpx_baseline.py (same concurrency per endpoint) to the same receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench import env, fixtures
from bench.fixtures import Publisher, RunOrg, receiver_reset, receiver_stats
from bench.phases.base import Context, Need, Phase
from bench.report import Row, median

CONCURRENCY = "10"  # the bare httpx loop's, unless APPS_API_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT is set


@dataclass
class Tally:
    service_rates: list[float] = field(default_factory=list)
    baseline_rates: list[float] = field(default_factory=list)
    service_totals: list[float] = field(default_factory=list)  # commit to the last read
    service_cpu: list[float] = field(default_factory=list)  # ms per delivery
    baseline_cpu: list[float] = field(default_factory=list)
    failures: int = 0
    duplicates: int = 0


async def signed_requests(connection: asyncpg.Connection, org: RunOrg) -> list[list[Any]]:
    """The service's deliveries of this organization as pre-signed requests (same ids, bodies, keys)."""
    from apps_api.delivery.signing import signature_headers

    rows = await connection.fetch(
        "SELECT d.endpoint_url, d.message_id, d.payload::text AS payload, a.secret FROM outbound_deliveries d "
        "JOIN apps a ON a.id = d.app_id WHERE d.organization_id = $1",
        org.id,
    )
    requests = []
    for row in rows:
        body = json.dumps(json.loads(row["payload"]), separators=(",", ":")).encode()
        headers = signature_headers(
            secret=row["secret"], message_id=row["message_id"], timestamp=int(time.time()), body=body
        )
        headers.update({"content-type": "application/json", "user-agent": "apps-api-webhooks/1"})
        requests.append([row["endpoint_url"], headers, body.decode()])
    return requests


async def _unsuccessful(connection: asyncpg.Connection, org: RunOrg) -> int:
    return int(
        await connection.fetchval(
            "SELECT count(*) FROM outbound_deliveries WHERE organization_id = $1 AND status <> 'successful'",
            org.id,
        )
    )


async def _service_round(
    context: Context, publisher: Publisher, org: RunOrg, index: int, count: int, webhooks: int
) -> tuple[dict[str, Any], float, float]:
    """Publish, wait for `count` deliveries; (receiver stats, commit time, worker CPU seconds)."""
    receiver, worker = context.url(Need.RECEIVER), context.process(Need.WORKER)
    await publisher.connection.execute("DELETE FROM outbound_deliveries WHERE organization_id = $1", org.id)
    await receiver_reset(receiver)
    resource_ids = [f"fanout-{index}-{n}" for n in range(count // webhooks)]
    cpu_before = worker.cpu_seconds()
    committed = await fixtures.publish(
        publisher.engine, publisher.pool, org, resource_ids, {"status": "open", "topic": "bench"}
    )

    async def delivered() -> bool:
        return int((await receiver_stats(receiver))["count"]) >= count

    if not await fixtures.wait_for(delivered, timeout=300):
        raise RuntimeError(f"fan-out round {index}: deliveries did not all arrive")
    stats = await receiver_stats(receiver)

    async def finished() -> bool:
        return not await _unsuccessful(publisher.connection, org)

    await fixtures.wait_for(finished, timeout=60)
    return stats, committed, worker.cpu_seconds() - cpu_before


async def _baseline_round(
    context: Context, connection: asyncpg.Connection, org: RunOrg, tally: Tally
) -> None:
    """The very same signed payloads, a bare httpx loop, same concurrency."""
    receiver = context.url(Need.RECEIVER)
    requests = await signed_requests(connection, org)
    await receiver_reset(receiver)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(requests, handle)
    output = subprocess.run(
        [sys.executable, "-m", "bench.httpx_baseline", handle.name, "--concurrency", str(_concurrency())],
        capture_output=True,
        text=True,
        check=True,
        cwd=env.ROOT,
        env=context.services.env(),
    )
    os.unlink(handle.name)
    tally.baseline_cpu.append(json.loads(output.stdout)["cpu_seconds"] * 1000 / len(requests))
    stats = await receiver_stats(receiver)
    tally.baseline_rates.append(stats["count"] / (stats["last"] - stats["first"]))


def _concurrency() -> int:
    return int(os.environ.get("APPS_API_WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT", CONCURRENCY))


async def run(context: Context) -> None:
    options = context.options
    events, webhooks = options.fanout_events, options.fanout_webhooks
    async with fixtures.publisher(context.services, pool_size=2) as publisher:
        connection = publisher.connection
        org = await fixtures.create_org(connection, "fanout")
        await fixtures.create_webhooked_apps(connection, org, webhooks, f"{context.url(Need.RECEIVER)}/hook")
        expected = events * webhooks
        tally = Tally()
        for index in range(options.rounds + 1):  # round 0 warms the worker up (matcher cache, connections)
            count = expected if index else webhooks
            stats, committed, cpu = await _service_round(context, publisher, org, index, count, webhooks)
            if not index:
                continue
            tally.service_cpu.append(cpu * 1000 / count)
            tally.duplicates += int(stats["duplicates"])
            tally.failures += await _unsuccessful(connection, org)
            tally.service_rates.append(stats["count"] / (stats["last"] - stats["first"]))
            tally.service_totals.append(stats["count"] / (stats["last"] - committed))
            await _baseline_round(context, connection, org, tally)
        _report(context, tally, expected)


def _report(context: Context, tally: Tally, expected: int) -> None:
    options = context.options
    service, baseline = median(tally.service_rates), median(tally.baseline_rates)
    ratio = service / baseline if baseline else 0.0
    note = (
        f"{expected:,} deliveries a round ({options.fanout_events} events x {options.fanout_webhooks} "
        f"webhooks, one receiver, {_concurrency()} per endpoint); commit-to-last-read "
        f"{median(tally.service_totals):,.0f}/s; CPU per delivery: worker {median(tally.service_cpu):.2f} ms, "
        f"bare httpx process {median(tally.baseline_cpu):.2f} ms; "
        f"{tally.failures} not successful, {tally.duplicates} duplicate webhook-ids"
    )
    context.report.add(
        Row(
            "Webhook fan-out: deliveries/s sustained",
            f"{service:,.0f} /s",
            f"{baseline:,.0f} /s",
            f"{ratio:.2f}x",
            ">= 1,000/s",
            service >= 1000,
            note,
        )
    )
    context.report.add(
        Row(
            "Webhook fan-out: ratio to bare httpx",
            f"{service:,.0f} /s",
            f"{baseline:,.0f} /s",
            f"{ratio:.2f}x",
            ">= 0.6x",
            ratio >= 0.6,
        )
    )


PHASE = Phase(
    "fanout",
    "webhook fan-out (one worker process, one receiver process)",
    frozenset({Need.RECEIVER, Need.WORKER}),
    run,
)
