"""matching: CPU per event with 1k, 10k and 100k subscriptions (bench/matching.py), in this process."""

from __future__ import annotations

from bench.phases.base import Context, Phase
from bench.report import Row


def run(context: Context) -> None:
    from bench import matching

    figures = {total: matching.measure(total, 10_000) for total in (1_000, 10_000, 100_000)}
    small, large = figures[1_000][2], figures[100_000][2]
    context.report.add(
        Row(
            "Matching: CPU per event, 100k subscriptions",
            f"{large / 1000:.3f} ms",
            f"{small / 1000:.3f} ms (1k)",
            f"{large / small:.2f}x",
            "<= 1 ms",
            large <= 1000,
            "10k subscriptions: " + f"{figures[10_000][2] / 1000:.3f} ms",
        )
    )
    context.report.add(
        Row(
            "Matching: growth 1k -> 100k subscriptions",
            f"{large / 1000:.3f} ms",
            f"{small / 1000:.3f} ms",
            f"{large / small:.2f}x",
            "<= 2x",
            large / small <= 2,
        )
    )


PHASE = Phase("matching", "matching (CPU per event)", frozenset(), run)
