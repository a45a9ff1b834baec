"""What a phase is: a name, what it needs, and the function (or coroutine function) that measures.

The harness (bench/phases/needs.py) starts each need once, before the first phase that asks for
it, and stops it after the last one; a phase reads what it asked for from its `Context`.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bench import env
from bench.report import Report


class Need(enum.Enum):
    """What a phase needs besides the seeded database and Redis; started in this order."""

    WRK = "the load generator"  # on PATH; checked before anything starts
    API = "the API"  # `apps-api serve`, one uvicorn process
    BASELINE = "the baseline server"  # bench/baseline, one uvicorn process
    RECEIVER = "the webhook receiver"  # bench/receiver.py, a process of its own
    WORKER = "the worker"  # `apps-api worker`, started on an empty queue
    SCALED = "the scaled data set"  # `--scale N` times the data set, in a database of its own


@dataclass(frozen=True)
class Scaled:
    """The scaled data set: its services (the same servers, another database) and how it was seeded."""

    services: env.Services
    seeding: str  # "seeded in N s", or "seeded earlier, reused"


@dataclass
class Context:
    """What a phase gets: the report, the run's options, the services and the needs it named."""

    report: Report
    options: argparse.Namespace
    services: env.Services
    processes: dict[Need, env.Process] = field(default_factory=dict)
    urls: dict[Need, str] = field(default_factory=dict)
    scaled_data: Scaled | None = None

    def process(self, need: Need) -> env.Process:
        return self.processes[need]

    def url(self, need: Need) -> str:
        return self.urls[need]

    @property
    def scaled(self) -> Scaled:
        assert self.scaled_data is not None, "the phase did not name Need.SCALED"
        return self.scaled_data


@dataclass(frozen=True)
class Phase:
    name: str  # as `--only` names it
    title: str  # logged when it starts; formatted with the options (`{seconds}`, `{soak:.0f}`, ...)
    needs: frozenset[Need]
    run: Callable[[Context], Coroutine[Any, Any, None] | None]
