"""Generated mutants of the modules where a bug is a breach or a loss; the tests must kill them.

Unlike scripts/mutation_probe.py (hand-picked bugs, each with the test meant to catch it), the
mutants here are generated: every token of the modules below that one of these operators applies
to becomes one mutant (docstrings, comments, string literals and type annotations excepted):

    comparison   <  <=  >  >=  ==  !=  swapped with their neighbour or negation; `is`/`is not`,
                 `in`/`not in` negated
    boolean      `and` <-> `or`; `not` dropped
    arithmetic   +  -  *  /  //  %  swapped (+ <-> -, * <-> /, // -> /, % -> //)
    constants    an integer n -> n + 1 (0 -> 1, 1 -> 2, ...), a float x -> x * 2 + 1; True <-> False
    arguments    a keyword argument `name=True/False/None` flipped or dropped to its default
                 is not generated (the defaults differ): only the operators above

A mutant that is not valid Python is skipped. Each mutant runs like a probe mutation: src/ is
copied to a scratch folder, the mutated file written there, and the module's test files run with
that copy first on PYTHONPATH (subprocesses inherit it), stopping at the first failure. A mutant
is killed when a test fails or the run exceeds its timeout (a mutant that hangs a test is
caught: the suite would hang in CI).

    .venv/bin/python scripts/mutation_sample.py --list                      # mutants per module
    .venv/bin/python scripts/mutation_sample.py --budget 900 --floor 90     # CI: a random sample
    .venv/bin/python scripts/mutation_sample.py --all --modules kit/pagination.py --report out.json

The sample's order comes from `--seed` (random when not given; always printed, so a run is
repeatable with `--seed N`). With `--budget`, mutants run in that order until the budget is spent.
Exits non-zero when the kill rate is under `--floor` (percent). A surviving mutant prints its diff
and the tests that ran.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "apps_api"

# The modules (under src/apps_api) and the test files that should kill their mutants: the files
# that exercise the module directly, fastest first (-x stops at the first failure).
MODULES: dict[str, tuple[str, ...]] = {
    "auth/secrets.py": (
        "tests/auth/test_identity_token.py",
        "tests/auth/test_app_token_auth.py",
        "tests/security/test_security_at_rest.py",
    ),
    "auth/app_tokens.py": ("tests/auth/test_app_token_auth.py", "tests/apps/test_app_trust.py"),
    "auth/policy.py": ("tests/auth/test_access_policy.py", "tests/auth/test_isolation_matrix.py"),
    "auth/service.py": (
        "tests/auth/test_auth.py",
        "tests/auth/test_principal_cache_rules.py",
        "tests/auth/test_principal_cache.py",
        "tests/auth/test_app_token_auth.py",
    ),
    "auth/dependencies.py": (
        "tests/auth/test_readers.py",
        "tests/kit/test_write_connections.py",
        "tests/auth/test_auth.py",
        "tests/auth/test_access_org.py",
        "tests/apps/test_app_trust.py",
    ),
    "kit/pagination.py": ("tests/kit/test_page_links.py", "tests/kit/test_pagination.py"),
    "kit/security.py": ("tests/security/test_security_login.py", "tests/delivery/test_webhooks_units.py"),
    "kit/throttle.py": ("tests/security/test_security_login.py",),
    "kit/crypto.py": ("tests/security/test_security_at_rest.py",),
    "web/session.py": ("tests/installflow/test_install_flow.py", "tests/security/test_security_sessions.py"),
    "auth/access_tokens.py": (
        "tests/installations/test_trigger_request_url.py",
        "tests/auth/test_app_token_auth.py",
        "tests/apps/test_app_trust_triggers.py",
    ),
    "delivery/triggers/tokens.py": (
        "tests/installations/test_trigger_request_url.py",
        "tests/auth/test_app_token_auth.py",
        "tests/apps/test_app_trust_triggers.py",
    ),
    "app_user_tokens/service.py": (
        "tests/apps/test_app_user_tokens_service.py",
        "tests/apps/test_app_trust.py",
    ),
    "catalog/visibility.py": (
        "tests/apps/test_visibility_predicates.py",
        "tests/apps/test_public_apps.py",
        "tests/apps/test_catalogue_views.py",
    ),
    "delivery/signing.py": ("tests/delivery/test_webhooks_units.py",),
    "delivery/partitions.py": ("tests/delivery/test_log_partitions.py",),
    "delivery/matching.py": ("tests/webhooks/test_webhooks_matching.py",),
    "delivery/retry.py": (
        "tests/delivery/test_webhooks_units.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/lease.py": (
        "tests/delivery/test_webhooks_units.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/record.py": (
        "tests/delivery/test_webhooks_units.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/send.py": ("tests/delivery/test_webhooks_units.py", "tests/delivery/test_webhooks_delivery.py"),
    "delivery/engine.py": (
        "tests/delivery/test_engine_pump.py",
        "tests/delivery/test_webhooks_units.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/listener.py": (
        "tests/delivery/test_delivery_paths.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/sweeper.py": (
        "tests/delivery/test_sweeper.py",
        "tests/delivery/test_delivery_paths.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/maintenance.py": (
        "tests/delivery/test_maintenance.py",
        "tests/delivery/test_delivery_paths.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "delivery/tasks.py": (
        "tests/delivery/test_delivery_paths.py",
        "tests/delivery/test_webhooks_delivery.py",
    ),
    "observability/shedding.py": ("tests/operations/test_overload.py",),
}

# Mutants no test can tell from the original (triaged in docs/testing.md), keyed by module, the
# line's text (so they survive code moving around them) and the change: why each is equivalent.
# In any module: a frozen dataclass made mutable. No code assigns to its fields: mypy --strict
# refuses such an assignment, so the mutant behaves the same.
_FROZEN = ("@dataclass(frozen=True)", "True", "False")
EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    ("auth/app_tokens.py", "@dataclass(slots=True)", "True", "False"): (
        "`__slots__` or a `__dict__`: the secrets' holder reads and compares the same attributes"
    ),
    ("auth/secrets.py", "_REENCRYPT_BATCH = 500", "500", "501"): (
        "a batch size: re-encryption walks every row in batches of any size alike"
    ),
    (
        "kit/pagination.py",
        "return bool(await session.scalar(select(exists(statement.limit(1).subquery()))))",
        "1",
        "2",
    ): "EXISTS is true for one row or two alike: the limit only spares reading more",
    (
        "kit/pagination.py",
        "rows = list(await statement.fetch(db, limit=params.page_size + 1, **values))",
        "1",
        "2",
    ): "one row past the page tells that more follow; two extra rows tell it as well",
    (
        "kit/pagination.py",
        "(await session.execute(query.options(*options).order_by(*order).limit(params.page_size + 1))).all()",
        "1",
        "2",
    ): "the ORM pages: one row past the page tells that more follow; two extra rows tell it as well",
    ("kit/pagination.py", "ordered[: params.page_size + 1],", "1", "2"): (
        "the in-memory pages: one item past the page tells that more follow; two tell it as well"
    ),
    ("kit/throttle.py", "hashed = hashlib.sha256(self.value.encode()).hexdigest()[:32]", "32", "33"): (
        "a longer prefix of the same hash: key names change alike for every reader and writer"
    ),
    (
        "kit/throttle.py",
        "return max((int(ttl) for ttl in ttls if ttl and int(ttl) > 0), default=0)",
        ">",
        ">=",
    ): "`ttl and` already leaves out a TTL of 0; -1 and -2 stay out either way",
    ("auth/secrets.py", '_DUMMY_SECRET = "0" * 64', "64", "65"): (
        "the dummy only gives every check the same work; no secret is compared equal to it"
        " (M25 and the dummy-secret tests cover the `previous is not None` that makes it so)"
    ),
    (
        "auth/secrets.py",
        "for column, value in zip(columns, row[1:], strict=True)",
        "True",
        "False",
    ): "the row is its id and exactly these columns: the lengths always agree",
    (
        "auth/app_tokens.py",
        "if app_id is None or user_id is None or organization_id is None:",
        "or",
        "and",
    ): "a token missing one of these claims is refused further on all the same (no app, user or"
    " installation has a null id); tests/auth/test_app_token_auth.py's `without_*` cases hold the 401",
    ("delivery/partitions.py", "purged_default_rows: int = 0", "0", "1"): (
        "a default never read: maintain() always sets it from the DELETE's row count"
    ),
    ("delivery/maintenance.py", "PURGE_BATCH = 5000", "5000", "5001"): (
        "a batch size: the purge deletes batch after batch until one comes back short, whatever the size"
    ),
}

_SWAPS: dict[str, tuple[str, ...]] = {
    "<": ("<=", ">="),
    "<=": ("<", ">"),
    ">": (">=", "<="),
    ">=": (">", "<"),
    "==": ("!=",),
    "!=": ("==",),
    "+": ("-",),
    "-": ("+",),
    "*": ("/",),
    "/": ("*",),
    "//": ("/",),
    "%": ("//",),
    "and": ("or",),
    "or": ("and",),
    "True": ("False",),
    "False": ("True",),
}


# ((line, column), (line, column)): from a token's start to before another's.
Span = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    column: int
    old: str
    new: str

    @property
    def id(self) -> str:
        return f"{self.module}:{self.line}:{self.column}:{self.old!r}->{self.new!r}"

    def equivalence(self) -> str | None:
        """Why this mutant is equivalent (listed in EQUIVALENT), or None."""
        text = (PACKAGE / self.module).read_text().splitlines()[self.line - 1].strip()
        if (text, self.old, self.new) == _FROZEN:
            return "a frozen dataclass made mutable: nothing assigns to it (mypy --strict refuses that)"
        return EQUIVALENT.get((self.module, text, self.old, self.new))


def _annotation_spans(tree: ast.AST) -> list[Span]:
    """(start, end) positions of every type annotation: a mutated annotation changes nothing."""
    spans = []
    for node in ast.walk(tree):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None and annotation.end_lineno is not None:
                end = (annotation.end_lineno, annotation.end_col_offset or 0)
                spans.append(((annotation.lineno, annotation.col_offset), end))
    return spans


def _operator_gaps(tree: ast.AST) -> list[Span]:
    """Where binary operators stand (between their operands): a `*` elsewhere is syntax."""
    gaps = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and node.left.end_lineno is not None:
            gaps.append(
                (
                    (node.left.end_lineno, node.left.end_col_offset or 0),
                    (node.right.lineno, node.right.col_offset),
                )
            )
    return gaps


_ARITHMETIC = frozenset({"+", "-", "*", "/", "//", "%"})


def _number(token: str) -> str | None:
    try:
        value = ast.literal_eval(token)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return repr(value + 1) if isinstance(value, int) else repr(value * 2 + 1)


def _word_changes(word: str, previous: str, following: str) -> list[tuple[str, str]]:
    """(old, new) texts for an operator or keyword token, given its neighbours."""
    if word == "not":
        if following == "in":
            return [("not in", "in")]
        return [("not", "")] if previous != "is" else []  # `is not`: mutated at its `is`
    if word == "is":
        return [("is not", "is")] if following == "not" else [("is", "is not")]
    if word == "in":
        return [] if previous == "not" else [("in", "not in")]  # `not in`: mutated at its `not`
    return [(word, new) for new in _SWAPS.get(word, ())]


def _changes(tokens: list[tokenize.TokenInfo], index: int) -> list[tuple[str, str]]:
    """(old, new) texts of the mutants of one token."""
    token = tokens[index]
    if token.type == tokenize.NUMBER:
        bumped = _number(token.string)
        return [(token.string, bumped)] if bumped is not None else []
    following = tokens[index + 1].string if index + 1 < len(tokens) else ""
    previous = tokens[index - 1].string if index else ""
    return _word_changes(token.string, previous, following)


def _mutable(token: tokenize.TokenInfo, lines: list[str], skipped: list[Span], gaps: list[Span]) -> bool:
    """Whether a token may be mutated: not in an annotation or a `pragma: no mutate` line."""
    if token.type not in (tokenize.OP, tokenize.NAME, tokenize.NUMBER):
        return False
    if any(start <= token.start < end for start, end in skipped):
        return False
    if "pragma: no mutate" in lines[token.start[0] - 1]:
        return False
    # A unary minus, a `*` of unpacking or of keyword-only arguments is no binary operator.
    return token.string not in _ARITHMETIC or any(start <= token.start < end for start, end in gaps)


def mutants_of(module: str) -> list[Mutant]:
    """Every valid mutant of one module, in source order."""
    source = (PACKAGE / module).read_text()
    tree = ast.parse(source)
    skipped, gaps = _annotation_spans(tree), _operator_gaps(tree)
    lines = source.splitlines(keepends=True)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    found = [
        Mutant(module, *token.start, old, new)
        for index, token in enumerate(tokens)
        if _mutable(token, lines, skipped, gaps)
        for old, new in _changes(tokens, index)
    ]
    return [mutant for mutant in found if _valid(mutant, source)]


def apply(mutant: Mutant, source: str) -> str:
    """The module's source with the mutant's token replaced."""
    lines = source.splitlines(keepends=True)
    line = lines[mutant.line - 1]
    before, after = line[: mutant.column], line[mutant.column :]
    if mutant.old in ("is not", "not in"):
        match = re.match(r"(is|not)\s+(not|in)", after)
        assert match is not None, mutant.id
        after = mutant.new + after[match.end() :]
    else:
        assert after.startswith(mutant.old), mutant.id
        rest = after[len(mutant.old) :]
        if mutant.new == "":  # a dropped `not`
            rest = rest.lstrip(" ")
        after = mutant.new + rest
    lines[mutant.line - 1] = before + after
    return "".join(lines)


def _valid(mutant: Mutant, source: str) -> bool:
    try:
        compile(apply(mutant, source), mutant.module, "exec")
    except SyntaxError:
        return False
    return True


def diff(mutant: Mutant) -> str:
    source = (PACKAGE / mutant.module).read_text()
    changed = apply(mutant, source)
    return "".join(
        difflib.unified_diff(
            source.splitlines(keepends=True),
            changed.splitlines(keepends=True),
            f"src/apps_api/{mutant.module}",
            f"src/apps_api/{mutant.module} (mutant)",
            n=1,
        )
    )


@dataclass
class Result:
    mutant: str
    outcome: str  # killed, timeout, survived
    seconds: float
    detail: str


def run(mutant: Mutant, scratch: Path, base_env: dict[str, str], timeout: float) -> Result:
    copy = scratch / "src"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    target = copy / "apps_api" / mutant.module
    target.write_text(apply(mutant, target.read_text()))
    env = {**base_env, "PYTHONPATH": os.pathsep.join([str(copy), base_env.get("PYTHONPATH", "")])}
    tests = MODULES[mutant.module]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rA", "-p", "no:cacheprovider", *tests]
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return Result(mutant.id, "timeout", time.monotonic() - started, f"over {timeout:.0f} s")
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    if done.returncode == 0:
        ran = re.findall(r"^PASSED (\S+)", output, flags=re.MULTILINE)
        return Result(mutant.id, "survived", elapsed, "\n".join(ran) or output[-2000:])
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    return Result(mutant.id, "killed", elapsed, failed[0] if failed else output[-500:])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modules", help="comma-separated modules (default: all of MODULES)")
    parser.add_argument("--list", action="store_true", help="count the mutants per module and stop")
    parser.add_argument("--all", action="store_true", help="run every mutant, not a sample")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds of mutants (sample)")
    parser.add_argument("--seed", type=int, help="the sample's seed (default: random, printed)")
    parser.add_argument("--floor", type=float, default=0.0, help="minimum kill rate, percent")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--report", type=Path, help="write every result as JSON here")
    parser.add_argument("--show", help="print the diff of one mutant id and stop")
    parser.add_argument("--ids", type=Path, help="run only the mutant ids listed in this file (one a line)")
    return parser


def _listed(modules: list[str], mutants: list[Mutant]) -> None:
    for module in modules:
        print(f"{sum(m.module == module for m in mutants):5} {module}")
    print(f"{len(mutants):5} in all")


def _to_run(args: argparse.Namespace, mutants: list[Mutant]) -> list[Mutant]:
    """The mutants not listed as equivalent (and among `--ids`, when given)."""
    equivalent = [mutant for mutant in mutants if mutant.equivalence() is not None]
    mutants = [mutant for mutant in mutants if mutant.equivalence() is None]
    print(f"mutation sample: {len(equivalent)} mutants left out as equivalent (EQUIVALENT)")
    if args.ids:
        wanted = {line.strip() for line in args.ids.read_text().splitlines() if line.strip()}
        mutants = [mutant for mutant in mutants if mutant.id in wanted]
    return mutants


def _run_all(args: argparse.Namespace, order: list[Mutant]) -> list[Result]:
    """Run the mutants in order (with `--budget`, until it is spent); print each outcome."""
    base_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="apps-api-sample-") as folder:
        for mutant in order:
            if not args.all and results and time.monotonic() - started > args.budget:
                break
            result = run(mutant, Path(folder), base_env, args.timeout)
            results.append(result)
            print(f"{result.outcome:8} ({result.seconds:5.1f} s) {mutant.id}", flush=True)
            if result.outcome == "survived":
                print(diff(mutant))
                print(f"  tests that ran ({' '.join(MODULES[mutant.module])}):")
                print("    " + result.detail.replace("\n", "\n    "), flush=True)
    return results


def _per_module(results: list[Result]) -> None:
    """Killed of run, per module."""
    per_module: dict[str, list[int]] = {}
    for result in results:
        counts = per_module.setdefault(result.mutant.split(":", 1)[0], [0, 0])
        counts[0] += result.outcome != "survived"
        counts[1] += 1
    for module, (dead, ran) in sorted(per_module.items()):
        print(f"  {module:32} {dead:4}/{ran:<4} {100.0 * dead / ran:5.1f} %")


def _order(args: argparse.Namespace, mutants: list[Mutant]) -> tuple[int, list[Mutant]]:
    """The seed, and the mutants in the order they run: shuffled by it unless `--all`."""
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    order = list(mutants)
    if not args.all:
        random.Random(seed).shuffle(order)
        print(f"mutation sample: seed {seed} (repeat with --seed {seed}), budget {args.budget:.0f} s")
    return seed, order


def _score(results: list[Result], floor: float, seed: int) -> int:
    """Print the kill rate (per module and in all); 1 when it is under the floor."""
    killed = sum(result.outcome != "survived" for result in results)
    rate = 100.0 * killed / len(results) if results else 100.0
    _per_module(results)
    print(
        f"mutation sample: {killed} of {len(results)} killed ({rate:.1f} %), floor {floor:.1f} %, seed {seed}"
    )
    return 1 if rate < floor else 0


def _modules(parser: argparse.ArgumentParser, asked: str | None) -> list[str]:
    modules = asked.split(",") if asked else list(MODULES)
    if unknown := set(modules) - set(MODULES):
        parser.error(f"unknown modules: {sorted(unknown)}")
    return modules


def _printed(args: argparse.Namespace, modules: list[str], mutants: list[Mutant]) -> bool:
    """`--show` (one mutant's diff) and `--list` (the counts): True when one of them was asked."""
    if args.show:
        (chosen,) = [mutant for mutant in mutants if mutant.id == args.show]
        print(diff(chosen))
        return True
    if args.list:
        _listed(modules, mutants)
        return True
    return False


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    modules = _modules(parser, args.modules)
    mutants = [mutant for module in modules for mutant in mutants_of(module)]
    if _printed(args, modules, mutants):
        return 0
    mutants = _to_run(args, mutants)
    seed, order = _order(args, mutants)
    print(f"mutation sample: {len(mutants)} mutants over {len(modules)} modules", flush=True)
    results = _run_all(args, order)
    if args.report:
        args.report.write_text(json.dumps([asdict(result) for result in results], indent=1))
    return _score(results, args.floor, seed)


if __name__ == "__main__":
    sys.exit(main())
