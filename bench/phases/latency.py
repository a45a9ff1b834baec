"""latency: commit to receiver at 100 events/s, against a direct POST right after a commit (the floor)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import httpx

from bench import fixtures
from bench.fixtures import Publisher, RunOrg, receiver_reset, receiver_stats
from bench.phases.base import Context, Need, Phase
from bench.report import Row

RATE = 100  # events a second


async def _stream(
    publisher: Publisher, org: RunOrg, receiver: str, total: int
) -> tuple[dict[str, float], dict[str, float]]:
    """One event per transaction at RATE per second; every fourth, a signed POST of the publisher's own.

    Returns the commit times of the events and the send times of the direct POSTs (by resource id).
    """
    from apps_api.delivery.signing import signature_headers

    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    commits: dict[str, float] = {}
    direct: dict[str, float] = {}
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        for number in range(total):
            due = started + number / RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            resource_id = f"latency-{number}"
            commits[resource_id] = await fixtures.publish(
                publisher.engine, publisher.pool, org, [resource_id], {"status": "open"}
            )
            if number % 4 == 0:
                # The floor: the publisher itself POSTs a signed payload right after a commit.
                floor_id = f"direct-{number}"
                async with publisher.engine.begin() as tx:
                    await tx.exec_driver_sql("SELECT 1")
                direct[floor_id] = time.time()
                body = json.dumps({"resource_id": floor_id}).encode()
                headers = signature_headers(
                    secret=secret, message_id=floor_id, timestamp=int(time.time()), body=body
                )
                await client.post(f"{receiver}/hook", content=body, headers=headers)
    return commits, direct


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def run(context: Context) -> None:
    receiver, worker = context.url(Need.RECEIVER), context.process(Need.WORKER)
    async with fixtures.publisher(context.services, pool_size=4) as publisher:
        org = await fixtures.create_org(publisher.connection, "latency")
        await fixtures.create_webhooked_apps(publisher.connection, org, 1, f"{receiver}/hook")
        # Warm-up, then the measured stream.
        total = int(context.options.latency_seconds * RATE)
        await receiver_reset(receiver, track=True)
        await fixtures.publish(publisher.engine, publisher.pool, org, ["latency-warmup"], {"status": "open"})
        cpu_before = worker.cpu_seconds()
        commits, direct = await _stream(publisher, org, receiver, total)

        async def arrived() -> bool:
            return int((await receiver_stats(receiver))["count"]) >= total + len(direct) + 1

        await fixtures.wait_for(arrived, timeout=120)
        worker_cpu_ms = (worker.cpu_seconds() - cpu_before) * 1000 / max(total, 1)
        reads = (await receiver_stats(receiver, detail=True))["reads"]
    latencies = sorted((reads[key] - value) * 1000 for key, value in commits.items() if key in reads)
    floors = sorted((reads[key] - value) * 1000 for key, value in direct.items() if key in reads)
    missing = total - len(latencies)
    context.report.add(
        Row(
            f"End-to-end latency at {RATE} events/s: p50",
            f"{_pct(latencies, 0.5):.1f} ms",
            f"{_pct(floors, 0.5):.1f} ms",
            "-",
            "<= 30 ms",
            _pct(latencies, 0.5) <= 30,
            f"{total} events, {missing} missing; baseline = direct POST after a commit; "
            f"worker CPU {worker_cpu_ms:.2f} ms per event",
        )
    )
    context.report.add(
        Row(
            f"End-to-end latency at {RATE} events/s: p99",
            f"{_pct(latencies, 0.99):.1f} ms",
            f"{_pct(floors, 0.99):.1f} ms",
            "-",
            "<= 200 ms",
            _pct(latencies, 0.99) <= 200,
            f"max {latencies[-1] if latencies else float('nan'):.0f} ms",
        )
    )


PHASE = Phase(
    "latency", f"end-to-end latency ({RATE} events/s)", frozenset({Need.RECEIVER, Need.WORKER}), run
)
