"""The test command of scripts/mutation_tool.py's `--contexts` runs: only the tests that run the mutated line.

cosmic-ray has written one mutant into the scratch copy's module and runs this with the scratch
folder as argument. The folder's `selection.json` (written by mutation_tool.py from a coverage run
with a context per test, `-p coverage_contexts`) says, for each statement of the unmutated module
inside a function, which of the module's test files' tests ran it. This compares the copy with the
unmutated text (`original.py`), takes the statements the mutant changes, and runs pytest (`-x`, as
the full command does) on the tests that ran them, in the test files' order.

It runs the module's whole test list instead when a changed statement runs at import (a module
or class body, a decorator, a default: every test depends on it), or when no test of the list ran
it in the test process itself (only in a server or worker process a test started, whose coverage
names no test). Selection only ever leaves tests out, so a mutant it kills is killed; a survivor
is run again against the whole list (`mutation_tool.py --confirm`) before it is triaged.
"""

from __future__ import annotations

import difflib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

# A mutant that makes a loop endless is killed by a timeout; waiting the tool's whole --timeout
# (minutes, sized for a module's whole list) for each is most of a run's time. A selected run gets
# a budget from what its tests took in the contexts run (itself slowed by coverage), kept under
# the tool's timeout so that this process, not cosmic-ray, ends the run and its process group.
BUDGET_START, BUDGET_FACTOR, BUDGET_CAP, UNKNOWN_TEST = 30.0, 4.0, 200.0, 5.0
# Plugins no test of the modules' lists uses (hypothesis and schemathesis are for tests/api/'s
# fuzzing): loading them is 2-4 s of each run's start. `cosmic-ray baseline` runs the whole list
# with these options before any mutant, so a test that needed one would stop the module there.
PYTEST_OPTIONS = (
    *("-p", "no:cacheprovider", "-p", "no:schemathesis"),
    *("-p", "no:hypothesispytest", "-p", "no:anyio"),
)


def changed_lines(original: str, mutated: str) -> set[int]:
    """1-based lines of `original` that the mutant replaces or deletes, or beside which it inserts."""
    before, after = original.splitlines(), mutated.splitlines()
    lines: set[int] = set()
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, low, high, _new_low, _new_high in matcher.get_opcodes():
        if tag == "insert":  # between lines `low` and `low + 1`
            lines.update(line for line in (low, low + 1) if 1 <= line <= len(before))
        elif tag != "equal":
            lines.update(range(low + 1, high + 1))
    return lines


def tests_for(selection: dict[str, object], lines: set[int]) -> list[str] | None:
    """The selected tests' node ids in run order, or None: run the module's whole list."""
    statement_of: dict[str, int] = selection["statement_of"]  # type: ignore[assignment]
    tests_of: dict[str, list[str]] = selection["tests_of"]  # type: ignore[assignment]
    order: list[str] = selection["order"]  # type: ignore[assignment]
    files: list[str] = selection["files"]  # type: ignore[assignment]
    seconds: dict[str, float] = selection.get("seconds", {})  # type: ignore[assignment]
    suite = float(selection.get("suite_seconds", 0.0))  # type: ignore[arg-type]
    chosen: set[str] = set()
    for line in lines:
        statement = statement_of.get(str(line))
        if statement is None:  # at import, or outside any statement the parser knows
            return None
        tests = tests_of.get(str(statement))
        if not tests:  # run only in a process a test started, or by no test
            return None
        chosen.update(tests)
    rank = {test: index for index, test in enumerate(order)}
    ranked = sorted(chosen, key=lambda test: rank.get(test, len(rank)))
    own = [test for test in ranked if test.split("::", 1)[0] in files]
    # Other files' tests (a --suite selection), fastest first, while their time lasts.
    others, spent = [], 0.0
    for test in ranked[len(own) :]:
        spent += seconds.get(test, UNKNOWN_TEST)
        if spent > suite:
            break
        others.append(test)
    return (own + others) or None


def budget(selection: dict[str, object], tests: list[str]) -> float:
    """Seconds a selected run may take before it counts as a timeout (a kill)."""
    seconds: dict[str, float] = selection.get("seconds", {})  # type: ignore[assignment]
    took = sum(seconds.get(test, UNKNOWN_TEST) for test in tests)
    return min(BUDGET_START + BUDGET_FACTOR * took, BUDGET_CAP)


def main() -> None:
    folder = Path(sys.argv[1])
    selection = json.loads((folder / "selection.json").read_text())
    original = (folder / "original.py").read_text()
    mutated = (folder / "src" / "apps_api" / selection["module"]).read_text()
    chosen = tests_for(selection, changed_lines(original, mutated))
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rA", *PYTEST_OPTIONS]
    if not chosen:
        print("mutation_selected: the whole list", flush=True)
        # the same process: cosmic-ray's timeout reaches pytest
        files: list[str] = selection["files"]
        os.execv(sys.executable, [*command, *files])  # noqa: S606
    limit = budget(selection, chosen)
    print(f"mutation_selected: {len(chosen)} selected tests, {limit:.0f} s at most", flush=True)
    run = subprocess.Popen([*command, *chosen], start_new_session=True)  # noqa: S603
    try:
        sys.exit(run.wait(timeout=limit))
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        print(f"mutation_selected: timeout, over {limit:.0f} s", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
