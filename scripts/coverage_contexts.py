"""A pytest plugin: each test's coverage recorded under its node id (`-p coverage_contexts`).

coverage's own `dynamic_context = test_function` switches when a function named `test*` is
entered, so a fixture's set-up counts for the test before it. This switches on pytest's own
protocol instead: set-up, call and tear-down of a test all count for that test. What runs in a
process the test starts (an API server, a worker) is measured by that process's coverage, whose
context stays empty. scripts/mutation_tool.py reads the result to pick, for each mutant, the tests
that run its line.
"""

from __future__ import annotations

from collections.abc import Iterator

import coverage
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    measuring = coverage.Coverage.current()
    if measuring is not None:
        measuring.switch_context(item.nodeid)
    yield
    if measuring is not None:
        measuring.switch_context("")
