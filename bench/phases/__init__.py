"""The benchmark's phases, one module each, in the order they run.

The phases that need only the API and the baseline run first, with matching (it needs nothing);
then those that need the worker, which starts once, on an empty queue, for all of them; scale
last, with its second database and second API.
See bench/phases/base.py for what a phase is and bench/phases/needs.py for how its needs start.
"""

from __future__ import annotations

from bench.phases import deep, fanout, latency, matching, overload, reads, scale, soak, writes
from bench.phases.base import Context, Need, Phase

__all__ = ["NAMES", "PHASES", "Context", "Need", "Phase"]

PHASES: list[Phase] = [
    reads.PHASE,
    deep.PHASE,
    overload.PHASE,
    writes.PHASE,
    matching.PHASE,
    fanout.PHASE,
    latency.PHASE,
    soak.PHASE,
    scale.PHASE,
]
# As `--only`, docs/benchmarks.md and RESULTS.md's "did not run" name them.
NAMES = ("reads", "deep", "overload", "writes", "fanout", "latency", "matching", "soak", "scale")
assert sorted(NAMES) == sorted(phase.name for phase in PHASES)
