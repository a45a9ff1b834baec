"""scripts/mutation_selected.py: a mutant runs against the tests that ran its line, or against all.

Selection may only ever leave out tests that cannot see the mutant. These pin the two ways it could
leave out one that can: a changed line it fails to find, and a line that runs at import (which
every test depends on, and coverage attributes to no test) treated as a line of one test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

SOURCE = """\
import functools

LIMIT = 3


@functools.cache
def limit(n: int = LIMIT) -> int:
    if n > LIMIT:
        return LIMIT
    return n


class Box:
    size = LIMIT + 1

    def fits(self, n: int) -> bool:
        return (
            n
            <= self.size
        )
"""


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    for name in ("mutation_selected", "mutation_tool"):
        sys.modules.pop(name, None)
    import mutation_selected
    import mutation_tool

    return mutation_selected, mutation_tool


def test_changed_lines_are_those_replaced_deleted_or_beside_an_insertion(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    selected, _ = scripts
    lines = SOURCE.splitlines()
    replaced = "\n".join(line.replace("n > LIMIT", "n >= LIMIT") for line in lines)
    assert selected.changed_lines(SOURCE, replaced) == {8}
    deleted = "\n".join(line for line in lines if line != "@functools.cache")
    assert selected.changed_lines(SOURCE, deleted) == {6}
    inserted = "\n".join([*lines[:9], "    pass", *lines[9:]])
    assert selected.changed_lines(SOURCE, inserted) == {9, 10}
    assert selected.changed_lines(SOURCE, SOURCE) == set()


def test_an_equivalent_entry_for_a_repeated_line_leaves_out_that_copy_only(
    scripts: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two handlers of one text: an entry keyed by the line after the second leaves the first in."""
    _, tool = scripts
    source = (
        "def f(g, h):\n"
        "    try:\n        g()\n    except Exception:\n        return 1\n"
        "    try:\n        h()\n    except Exception:\n        return 2\n"
    )
    module = "example.py"
    monkeypatch.setitem(
        tool.EQUIVALENT_BEFORE,
        (module, "except Exception:", "except CosmicRayTestingException:", "return 2"),
        "h never raises",
    )
    # The two mutants cosmic-ray's ExceptionReplacer makes of `source` (occurrences 0 and 1).
    first, second = (
        source.replace(f"Exception:\n        return {n}", f"CosmicRayTestingException:\n        return {n}")
        for n in (1, 2)
    )
    assert tool._equivalent(module, source, first) is None
    assert tool._equivalent(module, source, second) == "h never raises"
    assert tool._equivalent("other.py", source, second) is None


def test_only_lines_of_function_bodies_run_after_import(scripts: tuple[ModuleType, ModuleType]) -> None:
    _, tool = scripts
    runtime = tool._runtime_lines(SOURCE)
    assert {8, 9, 10, 17, 18, 19, 20} <= runtime
    # imports, constants, decorators, defaults, class bodies and `def` lines run at import
    assert runtime.isdisjoint({1, 3, 6, 7, 13, 14, 16})


def _selection(tests_of: dict[str, list[str]]) -> dict[str, object]:
    return {
        "statement_of": {"8": 8, "9": 9, "10": 10, "17": 17, "18": 17, "19": 17, "20": 17},
        "tests_of": tests_of,
        "order": ["t.py::first", "t.py::second", "t.py::third"],
        "files": ["t.py"],
    }


def test_tests_are_those_that_ran_the_changed_statements_in_the_files_order(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    selected, _ = scripts
    selection = _selection({"8": ["t.py::third", "t.py::first"], "17": ["t.py::second"]})
    assert selected.tests_for(selection, {8}) == ["t.py::first", "t.py::third"]
    # a continuation line of a statement counts as the statement
    assert selected.tests_for(selection, {19}) == ["t.py::second"]
    assert selected.tests_for(selection, {8, 19}) == ["t.py::first", "t.py::second", "t.py::third"]


def test_a_line_at_import_or_that_no_test_ran_in_process_runs_the_whole_list(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    selected, _ = scripts
    selection = _selection({"8": ["t.py::first"]})
    assert selected.tests_for(selection, {6}) is None  # the decorator: at import
    assert selected.tests_for(selection, {9}) is None  # ran only in a server process, or never
    assert selected.tests_for(selection, {8, 9}) is None  # one such line is enough


def test_other_files_tests_come_after_the_modules_own_fastest_first_while_their_time_lasts(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    selected, _ = scripts
    selection = {
        "statement_of": {"8": 8},
        "tests_of": {"8": ["t.py::first", "u.py::slow", "u.py::quick", "v.py::middle"]},
        "order": ["t.py::first", "u.py::quick", "v.py::middle", "u.py::slow"],
        "files": ["t.py"],
        "seconds": {"u.py::quick": 1.0, "v.py::middle": 4.0, "u.py::slow": 30.0},
        "suite_seconds": 10.0,
    }
    assert selected.tests_for(selection, {8}) == ["t.py::first", "u.py::quick", "v.py::middle"]
    selection["suite_seconds"] = 0.0
    assert selected.tests_for(selection, {8}) == ["t.py::first"]
    # no test of the module's own files ran it, and the others are over the time: the whole list
    selection["tests_of"] = {"8": ["u.py::slow"]}
    assert selected.tests_for(selection, {8}) is None


CHILD = """\
import sys

if sys.argv[1] == "first":
    print("started by the first test")
elif sys.argv[1] == "second":
    print("started by the second test, after a shared fixture's process")
else:
    print("started by a shared fixture")
"""

SAMPLE_TESTS = """\
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def shared_process() -> None:
    subprocess.run([sys.executable, "child.py", "shared"], check=True)


def test_first() -> None:
    subprocess.run([sys.executable, "child.py", "first"], check=True)


def test_second(shared_process: None) -> None:
    subprocess.run([sys.executable, "child.py", "second"], check=True)
"""


@pytest.mark.subprocess
def test_a_process_a_test_starts_records_for_that_test_and_a_shared_one_for_none(tmp_path: Path) -> None:
    """The worker a test starts runs delivery code for that test alone; a process a module- or
    session-scoped fixture starts also serves later tests, so naming one test for it would leave
    the others out of the selection."""
    from coverage import CoverageData

    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS)
    (tmp_path / ".coveragerc").write_text(
        "[run]\nsource = .\nomit = test_sample.py\nparallel = true\npatch = subprocess\n"
    )
    # Under CI's coverage step this test's own process is measured: its children must not inherit
    # that run's configuration.
    env = {name: value for name, value in os.environ.items() if not name.startswith("COVERAGE")}
    env["PYTHONPATH"] = str(SCRIPTS)
    run = [sys.executable, "-m", "coverage", "run", "--rcfile=.coveragerc", "-m", "pytest", "-q"]
    # Without pytest-asyncio, whose shared event-loop fixtures are set up inside every test: the
    # context of test_first's process then comes from the test's protocol alone.
    plugins = ["-p", "coverage_contexts", "-p", "no:cacheprovider", "-p", "no:asyncio", "test_sample.py"]
    done = subprocess.run(
        [*run, *plugins], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    combine = [sys.executable, "-m", "coverage", "combine", "--rcfile=.coveragerc", "-q"]
    subprocess.run(combine, cwd=tmp_path, env=env, check=True)
    data = CoverageData(basename=str(tmp_path / ".coverage"))
    data.read()
    (child,) = [name for name in data.measured_files() if name.endswith("child.py")]
    contexts = data.contexts_by_lineno(child)
    assert set(contexts[4]) == {"test_sample.py::test_first"}
    assert set(contexts[6]) == {"test_sample.py::test_second"}
    assert set(contexts[8]) == {""}
