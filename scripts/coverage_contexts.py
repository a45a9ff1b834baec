"""A pytest plugin: each test's coverage recorded under its node id (`-p coverage_contexts`).

coverage's own `dynamic_context = test_function` switches when a function named `test*` is
entered, so a fixture's set-up counts for the test before it. This switches on pytest's own
protocol instead: set-up, call and tear-down of a test all count for that test.

A process the test starts (a worker, an API server, the CLI) is measured by its own coverage
(`patch = ["subprocess"]`), which reads its configuration from the environment: each test's
children get the test's node id as their static context, so the lines a worker runs for a test
count for that test too. A process started by a fixture shared between tests (module or session
scope) serves tests after the one that started it; its context stays empty, as if no test ran
its lines. scripts/mutation_tool.py reads the result to pick, for each mutant, the tests that run
its line.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import coverage
import pytest

# Where the subprocess patch passes the configuration to the processes a test starts.
CHILD_CONFIG = "COVERAGE_PROCESS_CONFIG"
_running: list[str] = [""]  # the node id of the test whose protocol is running


def _children_context(measuring: coverage.Coverage, context: str) -> None:
    """Processes started from now on record under `context` (no-op without the subprocess patch)."""
    if CHILD_CONFIG not in os.environ:
        return
    config = copy.copy(measuring.config)
    config.context = context or None
    os.environ[CHILD_CONFIG] = config.serialize()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    measuring = coverage.Coverage.current()
    if measuring is not None:
        measuring.switch_context(item.nodeid)
        _children_context(measuring, item.nodeid)
    _running[0] = item.nodeid
    yield
    _running[0] = ""
    if measuring is not None:
        measuring.switch_context("")
        _children_context(measuring, "")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Iterator[None]:
    measuring = coverage.Coverage.current()
    shared = measuring is not None and fixturedef.scope != "function"
    if shared:
        assert measuring is not None
        _children_context(measuring, "")
    yield
    if shared:
        assert measuring is not None
        _children_context(measuring, _running[0])
