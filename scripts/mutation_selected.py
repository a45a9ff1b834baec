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
is run again against the whole list (`mutation_tool.py --survivors`) before it is triaged.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path


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
    return sorted(chosen, key=lambda test: rank.get(test, len(rank)))


def main() -> None:
    folder = Path(sys.argv[1])
    selection = json.loads((folder / "selection.json").read_text())
    original = (folder / "original.py").read_text()
    mutated = (folder / "src" / "apps_api" / selection["module"]).read_text()
    chosen = tests_for(selection, changed_lines(original, mutated))
    targets = chosen if chosen else list(selection["files"])
    print(f"mutation_selected: {f'{len(chosen)} selected tests' if chosen else 'the whole list'}", flush=True)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rA", "-p", "no:cacheprovider", *targets]
    os.execv(sys.executable, command)  # noqa: S606 - the same process: cosmic-ray's timeout reaches pytest


if __name__ == "__main__":
    main()
