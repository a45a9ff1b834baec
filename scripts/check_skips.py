"""No dead tests: fail when a test was skipped for any reason but a missing tool it names.

Reads the JUnit XML of a pytest run (`--junitxml`) and lists every skip. A skip is accepted only
when its reason names the tool that is missing, in the suite's form
`<tool> is missing: install ...` or `<tool> is not installed: ...`, and that tool is indeed
missing here (a path that does not exist, or a command or module not found): a test that skips
because the code under test changed, or on a machine that has the tool, fails CI instead of
quietly never running.

    .venv/bin/python scripts/check_skips.py test-artifacts/junit.xml
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

# "/usr/bin/chromium is missing: install ...", "openapi-python-client is not installed: pip ..."
MISSING_TOOL = re.compile(r"^(?P<tool>[\w./+-]+) is (?:missing|not installed)\b")


@dataclass(frozen=True)
class Skip:
    test: str
    reason: str


def skips(report: Path) -> list[Skip]:
    """Every skipped (or xfailed) test case of a JUnit XML report, with its reason."""
    found = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own report
        skipped = case.find("skipped")
        if skipped is None:
            continue
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        reason = skipped.get("message") or (skipped.text or "").strip()
        found.append(Skip(name, reason.removeprefix("Skipped: ")))
    return found


def tool_missing(tool: str) -> bool:
    """Whether the tool a skip names is really absent: a path, a command, or a Python module."""
    if tool.startswith("/"):
        return not Path(tool).exists()
    module = tool.replace("-", "_")
    return shutil.which(tool) is None and importlib.util.find_spec(module) is None


def refusal(skip: Skip) -> str | None:
    """Why the skip is not accepted, or None."""
    match = MISSING_TOOL.match(skip.reason)
    if match is None:
        return "its reason names no missing tool"
    if not tool_missing(match.group("tool")):
        return f"{match.group('tool')} is present on this machine"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path, help="pytest's --junitxml output")
    args = parser.parse_args()
    found = skips(args.report)
    print(f"skip check: {len(found)} skipped test(s) in {args.report}")
    refused = 0
    for skip in found:
        why = refusal(skip)
        refused += why is not None
        print(f"  {skip.test}\n      {skip.reason}\n      -> {f'REFUSED ({why})' if why else 'accepted'}")
    if refused:
        print(f"skip check: {refused} test(s) skipped, not for a missing tool", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
