"""Mutation probe: plant one-line bugs in security- and delivery-critical code; the tests must catch each.

Each mutation names its file (under src/apps_api), the function (or module-level name, or
`Class.method`) it lives in, the exact text it changes and what replaces it, and the test
files (with a `-k` selection) that should catch it. The probe:

1. checks that every text still occurs exactly once in its function: if the code moved on, it
   stops with a message naming the mutation, file, function and the missing text, so the list
   gets re-aligned instead of silently testing nothing;
2. runs the targeted tests once on the unchanged code (they must pass, or nothing is proven);
3. for each mutation, copies src/ into a scratch folder, applies the change there, and runs the
   targeted tests with that copy first on PYTHONPATH (subprocesses the tests start, such as the
   worker and the API server, inherit it), stopping at the first failure (`-x`);
4. reports which test caught each mutant and exits non-zero if any survived.

    .venv/bin/python scripts/mutation_probe.py [--only M1,M2] [--no-baseline] [--list]

It needs what the tests need (APPS_API_TEST_DATABASE_URL etc., or the embedded servers).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "apps_api"


@dataclass(frozen=True)
class Mutation:
    id: str
    what: str
    file: str  # under src/apps_api
    function: str  # function, Class.method, or module-level assigned name
    old: str
    new: str
    tests: tuple[str, ...]  # test files
    select: str = ""  # pytest -k expression


ISOLATION = "tests/auth/test_isolation_matrix.py"
FOREIGN_IDS = "own_paths_with_x_ids or foreign_redeliver"

# What lies between the lapsed lease's two conditions in engine._LEASE_STEPS (M7).
_LAPSED_MIDDLE = """
), lapsed_chosen AS (
    -- An app's n-th attempt is a candidate only while n more stay within the app's bound.
    SELECT id, app_id, locked_until FROM lapsed_turns AS t
    WHERE t.turn <= {{app_bound}} - (SELECT count(*) FROM holding AS h WHERE h.app_id = t.app_id)
), lapsed AS (
    -- Only candidates are locked, each condition checked again on the row's latest version: as
    -- every worker's candidates are the first of each app's attempts as its statement saw them,
    -- workers leasing at once (swaps take no lock) cannot together pass an app's bound.
    SELECT d.id, d.app_id FROM lapsed_chosen AS c JOIN outbound_deliveries AS d ON d.id = c.id
    """

MUTATIONS: list[Mutation] = [
    Mutation(
        "M1",
        "the `settings` check runs before the organization check",
        "auth/policy.py",
        "refusal",
        "    if reader.organization_id != collection.organization_id:",
        "    if collection.scope is not None and not reader.has_permission(collection.scope):\n"
        '        return "You do not have the `settings` permission."\n'
        "    if reader.organization_id != collection.organization_id:",
        (ISOLATION,),
        "organization_error",
    ),
    Mutation(
        "M2",
        "a log entry is looked up without its app filter",
        "webhooks/repository.py",
        "get_log_entry",
        "WebhookLogEntry.app_id == app_id,\n            WebhookLogEntry.id == entry_id,",
        "WebhookLogEntry.id == entry_id,",
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M3",
        "a wrong constraint name in the 409 check of installs",
        "installations/service.py",
        "_install",
        '"uq_app_installations_app_id_organization_id" in str(exc.orig)',
        '"uq_app_installations_organization_id_app_id" in str(exc.orig)',
        ("tests/installations/test_installations.py",),
        "second_install_is_409 or concurrent_installs",
    ),
    Mutation(
        "M4",
        "webhook-id suffixed per attempt (receivers can no longer de-duplicate)",
        "delivery/send.py",
        "_webhook_request",
        "message_id=attempt.message_id,",
        'message_id=f"{attempt.message_id}_{attempt.attempt_count}",',
        ("tests/delivery/test_webhooks_delivery.py",),
        "retries_until_success",
    ),
    Mutation(
        "M5a",
        "the SSRF guard skips the check for IP literals",
        "outbound/guard.py",
        "resolve_checked",
        "candidates: list[IPAddress] = [address]",
        "return str(address)",
        ("tests/security/test_ssrf_end_to_end.py",),
        "non_public_destinations",
    ),
    Mutation(
        "M5b",
        "the client connects to the hostname, not the checked address (DNS rebinding)",
        "outbound/client.py",
        "GuardedBackend.connect_tcp",
        "address, port, timeout=timeout,",
        "host, port, timeout=timeout,",
        ("tests/security/test_ssrf_end_to_end.py",),
        "rebinding",
    ),
    Mutation(
        "M6",
        "the signed string drops its trailing `.`",
        "delivery/signing.py",
        "sign",
        'f"{message_id}.{timestamp}.".encode()',
        'f"{message_id}.{timestamp}".encode()',
        ("tests/delivery/test_webhooks_units.py",),
        "standard_webhooks",
    ),
    Mutation(
        "M7",
        "a lease re-takes a delivery still in flight (lease not lapsed)",
        "delivery/lease.py",
        "LEASE_STEPS",
        # Both places: the candidates, and their re-check on the locked row's latest version.
        "AND locked_until < {{now}} AND id <> ALL({{recorded}}){_SENDABLE}"
        + _LAPSED_MIDDLE
        + "WHERE d.status = 'started' AND d.locked_until < {{now}} AND d.attempt_count",
        "AND id <> ALL({{recorded}}){_SENDABLE}"
        + _LAPSED_MIDDLE
        + "WHERE d.status = 'started' AND d.attempt_count",
        ("tests/delivery/test_webhooks_units.py",),
        "concurrent_leases",
    ),
    Mutation(
        "M8",
        "an owned app is looked up without its organization",
        "catalog/repository.py",
        "get_owned_app",
        "statement = owned_apps(organization_id=organization_id).where(App.id == app_id)",
        "statement = select(App).where(App.id == app_id)",
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M9",
        "a share is looked up without its app",
        "apps/repository.py",
        "APP_SHARE",
        '.where(*APP_SHARES_CONDITIONS, _shares.c.id == bindparam("share_id"))',
        '.where(_shares.c.id == bindparam("share_id"))',
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M10",
        "removing a share does not check that it belongs to the app",
        "apps/service.py",
        "delete_share",
        "if share is None or share.app_id != app.id:",
        "if share is None:",
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M11",
        "an owned app's installation is looked up without its app",
        "installations/repository.py",
        "get_app_installation",
        "statement = app_installations(app_id=app_id)",
        "statement = select(AppInstallation)",
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M12",
        "an organization's installation is looked up without its organization",
        "installations/repository.py",
        "get_organization_installation",
        "statement = organization_installations(organization_id=organization_id)",
        "statement = select(AppInstallation)",
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M13",
        "a webhook is looked up without its app",
        "webhooks/repository.py",
        "get_webhook",
        "select(Webhook).where(Webhook.app_id == app_id, Webhook.id == webhook_id)",
        "select(Webhook).where(Webhook.id == webhook_id)",
        (ISOLATION,),
        FOREIGN_IDS,
    ),
    Mutation(
        "M14",
        "webhooks are signed with the service's key instead of the app secret",
        "delivery/send.py",
        "_webhook_request",
        "        secret=secret,\n",
        "        secret=deliverer.settings.secret_key,\n",
        ("tests/delivery/test_webhooks_delivery.py",),
        "retries_until_success",
    ),
    Mutation(
        "M15",
        "expired API tokens are accepted",
        "auth/service.py",
        "_TOKEN_PRINCIPAL",
        '(_tokens.c.expires_at > bindparam("now"))',
        "(_tokens.c.expires_at.is_not(None))",
        ("tests/auth/test_auth.py",),
        "expired_token",
    ),
    Mutation(
        "M16",
        "revoked API tokens are accepted",
        "auth/service.py",
        "_TOKEN_PRINCIPAL",
        "_tokens.c.revoked_at.is_(None),",
        "_tokens.c.id.is_not(None),",
        ("tests/auth/test_auth.py",),
        "revoked_token",
    ),
    Mutation(
        "M17",
        "the CSRF token of any session is accepted",
        "web/session.py",
        "csrf_valid",
        "return isinstance(sid, str) and constant_time_equals(sid, browser_session.sid)",
        "return isinstance(sid, str)",
        ("tests/installflow/test_install_flow.py",),
        "csrf_token_of_its_session",
    ),
    Mutation(
        "M18",
        "the SSRF guard checks IPv4-mapped IPv6 addresses as IPv6",
        "outbound/guard.py",
        "refusal_reason",
        "address = _unmapped(address)",
        "address = address",
        ("tests/security/test_ssrf_end_to_end.py",),
        "non_public_destinations or loopback_forms",
    ),
    Mutation(
        "M19",
        "uninstall runs without its savepoint (a failure half-way leaves half an uninstall)",
        "installations/service.py",
        "uninstall",
        "async with session.begin_nested():",
        "for _no_savepoint in (None,):",
        ("tests/installations/test_installations.py",),
        "uninstall_failing_half_way",
    ),
    Mutation(
        "M20",
        "the purge deletes events not yet dispatched",
        "delivery/maintenance.py",
        "purge_batches",
        "(Event.created_at < cutoff) & Event.dispatched_at.is_not(None)",
        "(Event.created_at < cutoff)",
        ("tests/delivery/test_delivery_paths.py",),
        "purge",
    ),
    Mutation(
        "M21",
        "redeliver starts a second attempt while one is in flight",
        "webhooks/service.py",
        "redeliver",
        "if delivery.status == DeliveryStatus.STARTED:",
        'if delivery.status == "never":',
        ("tests/webhooks/test_webhooks_api.py",),
        "redeliver",
    ),
    Mutation(
        "M22",
        "unapproved apps count as public",
        "catalog/visibility.py",
        "is_public",
        "return and_(App.is_available_to_anyone, App.is_approved)",
        "return and_(App.is_available_to_anyone)",
        ("tests/apps/test_public_apps.py",),
        "retrieve_public_app",
    ),
    Mutation(
        "M23",
        "a finished attempt passes on the slot of a lease that had lapsed",
        "delivery/record.py",
        "_PASSED_SLOTS",
        "AND locked_by = $14 AND locked_until > $13",
        "AND locked_by = $14",
        ("tests/delivery/test_webhooks_units.py",),
        "passes_its_slot",
    ),
    # The survivors of an outside audit (issue 29): each passed the whole suite until a test
    # was written for it.
    Mutation(
        "M25",
        "the 64-zero dummy secret authenticates an app without a previous secret",
        "auth/secrets.py",
        "app_secret_matches",
        "constant_time_equals(previous or _DUMMY_SECRET, presented) and previous is not None",
        "constant_time_equals(previous or _DUMMY_SECRET, presented)",
        ("tests/auth/test_identity_token.py",),
        "dummy",
    ),
    Mutation(
        "M26",
        "a trigger token's `inst_id` is not matched to the installation (outlives a reinstall)",
        "auth/app_tokens.py",
        "_live_installation_user",
        "_INSTALLATION_USER[installation_id is not None]",
        "_INSTALLATION_USER[False]",
        ("tests/auth/test_app_token_auth.py",),
        "reinstalled",
    ),
    Mutation(
        "M27",
        "revoking an app-user token drops its installation filter",
        "app_user_tokens/service.py",
        "revoke",
        "            ApiToken.app_installation_id == installation.id,\n",
        "",
        ("tests/apps/test_app_trust.py",),
        "another_tenants",
    ),
    Mutation(
        "M28",
        "a cursor's HMAC is never checked",
        "kit/pagination.py",
        "decode_cursor",
        "if len(signature) != 16 or not hmac.compare_digest(signature, _sign(payload, key)):",
        "if len(signature) != 16:",
        ("tests/kit/test_pagination.py",),
        "another_key",
    ),
    Mutation(
        "M29",
        "a log partition expires by its start, not its end (a day within retention dropped)",
        "delivery/partitions.py",
        "_work",
        "_bounds(day)[1] <= cutoff",
        "_bounds(day)[0] <= cutoff",
        ("tests/delivery/test_log_partitions.py",),
        "cutoff_survives",
    ),
    Mutation(
        "M30",
        "`failing_since` restarts on every failed batch (automatic disabling never fires)",
        "delivery/record.py",
        "_RECORD_STEPS",
        "coalesce(w.failing_since, $13)",
        "$13",
        ("tests/webhooks/test_endpoint_care.py",),
        "streak",
    ),
    Mutation(
        "M31",
        "a lease ignores `previous_secret_expires_at` (an expired old secret still signs)",
        "delivery/lease.py",
        "LEASE_STEPS",
        "WHERE apps.id = d.app_id AND apps.previous_secret_expires_at > {{now}}) AS app_previous_secret",
        "WHERE apps.id = d.app_id) AS app_previous_secret",
        ("tests/security/test_security_rotation.py",),
        "past_its_grace",
    ),
    Mutation(
        "M32",
        "`Retry-After` is no longer capped",
        "delivery/retry.py",
        "plan_next",
        "delay = min(max(retry_after, 1.0), MAX_RETRY_AFTER_SECONDS)",
        "delay = max(retry_after, 1.0)",
        ("tests/delivery/test_webhooks_units.py",),
        "retry_plan",
    ),
    Mutation(
        "M33",
        "the shedding bound admits one request over the limit",
        "observability/shedding.py",
        "LoadShedMiddleware.__call__",
        "if self.in_flight >= self.limit:",
        "if self.in_flight > self.limit:",
        ("tests/operations/test_overload.py",),
        "exactly_limit",
    ),
    Mutation(
        "M34",
        "the sweeper's age check on undispatched events is inverted",
        "delivery/sweeper.py",
        "sweep",
        "Event.created_at < now - UNDISPATCHED_GRACE",
        "Event.created_at > now - UNDISPATCHED_GRACE",
        ("tests/delivery/test_delivery_paths.py",),
        "sweeper_finds",
    ),
    Mutation(
        "M35",
        "an API install sends no `install` trigger (the weather bot never gets its token)",
        "delivery/triggers/scheduling.py",
        "schedule_install_trigger",
        'if not has_trigger(app["trigger_conditions"], app["trigger_url"], "install"):',
        "if True:",
        ("tests/apps/test_example_weather_bot.py",),
        "installed_through_the_api",
    ),
]


class Stale(Exception):
    """The code moved on: a mutation's text is not where the probe expects it."""


def _names(statement: ast.stmt) -> list[str]:
    """The names a statement defines: a function's or class's, or the targets of an assignment."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        return [target.id for target in statement.targets if isinstance(target, ast.Name)]
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id]
    return []


def _segment(source: str, name: str, relative: str) -> tuple[int, int]:
    """(start, end) character offsets of `name` (function, Class.method, or assigned name) in source."""
    parts = name.split(".")
    body: list[ast.stmt] = ast.parse(source).body
    node: ast.stmt | None = None
    for depth, part in enumerate(parts):
        node = next((candidate for candidate in body if part in _names(candidate)), None)
        if node is None:
            raise Stale(f"{relative}: no `{'.'.join(parts[: depth + 1])}` any more")
        body = getattr(node, "body", [])
    assert node is not None
    lines = source.splitlines(keepends=True)
    start = sum(len(line) for line in lines[: node.lineno - 1])
    end = sum(len(line) for line in lines[: node.end_lineno])
    return start, end


def mutated_source(mutation: Mutation, root: Path = PACKAGE) -> tuple[Path, str]:
    """The mutated text of the mutation's file; Stale when its text is not exactly once in its function."""
    path = root / mutation.file
    where = f"{mutation.id} ({mutation.what}): src/apps_api/{mutation.file}, `{mutation.function}`"
    if not path.exists():
        raise Stale(f"{where}: the file is gone")
    source = path.read_text()
    try:
        start, end = _segment(source, mutation.function, mutation.file)
    except Stale as error:
        raise Stale(f"{where}: {error}") from None
    segment = source[start:end]
    count = segment.count(mutation.old)
    if count != 1:
        raise Stale(
            f"{where}: the text to mutate occurs {count} times there (expected once):\n"
            f"    {mutation.old!r}\n"
            "  Re-align this mutation in scripts/mutation_probe.py with the code as it is now."
        )
    return path, source[:start] + segment.replace(mutation.old, mutation.new) + source[end:]


def _pytest(tests: tuple[str, ...], select: str, env: dict[str, str]) -> tuple[int, str]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    if select:
        command += ["-k", select]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    return done.returncode, done.stdout + done.stderr


def _failed_test(output: str) -> str:
    found = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    return found[0] if found else "(no test named; see the output)"


def _run_mutant(mutation: Mutation, scratch: Path, base_env: dict[str, str]) -> tuple[bool, str, float]:
    copy = scratch / mutation.id / "src"
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    path, text = mutated_source(mutation)
    (copy / "apps_api" / path.relative_to(PACKAGE)).write_text(text)
    env = {
        **base_env,
        "PYTHONPATH": os.pathsep.join([str(copy), base_env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", "import apps_api; print(apps_api.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not loaded.startswith(str(copy)):
        raise SystemExit(f"the scratch copy is not the one imported ({loaded}): PYTHONPATH does not win")
    started = time.monotonic()
    code, output = _pytest(mutation.tests, mutation.select, env)
    elapsed = time.monotonic() - started
    if code == 0:
        return False, output, elapsed
    if code not in (1,):  # 2: interrupted/collection error, 4: usage, 5: no tests collected
        raise SystemExit(f"{mutation.id}: pytest exited {code}, not a test failure:\n{output[-3000:]}")
    return True, _failed_test(output), elapsed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated mutation ids")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run on the unchanged code")
    parser.add_argument("--list", action="store_true", help="list the mutations and check their texts")
    return parser


def _chosen(parser: argparse.ArgumentParser, only: str | None) -> list[Mutation]:
    if not only:
        return MUTATIONS
    wanted = set(only.split(","))
    chosen = [mutation for mutation in MUTATIONS if mutation.id in wanted]
    if unknown := wanted - {mutation.id for mutation in chosen}:
        parser.error(f"unknown mutation ids: {sorted(unknown)}")
    return chosen


def _stale(chosen: list[Mutation]) -> list[str]:
    """Why each mutation that no longer applies does not (empty when all apply)."""
    stale = []
    for mutation in chosen:
        try:
            mutated_source(mutation)
        except Stale as error:
            stale.append(str(error))
    return stale


def _baseline_passes(chosen: list[Mutation], base_env: dict[str, str]) -> bool:
    """The targeted tests on the unchanged code, one run per group of test files."""
    groups: dict[tuple[str, ...], set[str]] = {}
    for mutation in chosen:
        groups.setdefault(mutation.tests, set()).add(mutation.select)
    for tests, selects in groups.items():
        select = "" if "" in selects else " or ".join(f"({s})" for s in sorted(selects))
        code, output = _pytest(tests, select, base_env)
        if code != 0:
            print(f"baseline: the targeted tests fail on the unchanged code ({tests}):", file=sys.stderr)
            print(output[-4000:], file=sys.stderr)
            return False
    print(f"baseline: the targeted tests pass on the unchanged code ({len(groups)} groups)")
    return True


def _survivors(chosen: list[Mutation], base_env: dict[str, str]) -> list[Mutation]:
    """Run every mutant; print how each was caught, or what survived."""
    survivors = []
    with tempfile.TemporaryDirectory(prefix="apps-api-mutants-") as folder:
        for mutation in chosen:
            caught, detail, elapsed = _run_mutant(mutation, Path(folder), base_env)
            if caught:
                print(f"{mutation.id:4} caught   ({elapsed:5.1f} s) {mutation.what}", flush=True)
                print(f"       by {detail}", flush=True)
            else:
                survivors.append(mutation)
                print(f"{mutation.id:4} SURVIVED ({elapsed:5.1f} s) {mutation.what}")
                print(f"       {mutation.file}:{mutation.function}: {mutation.old!r} -> {mutation.new!r}")
                print(f"       tests: {' '.join(mutation.tests)} -k {mutation.select!r}", flush=True)
            shutil.rmtree(Path(folder) / mutation.id, ignore_errors=True)
    return survivors


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    chosen = _chosen(parser, args.only)
    if stale := _stale(chosen):
        print("mutation probe: the code moved on; these mutations no longer apply:\n", file=sys.stderr)
        print("\n".join(stale), file=sys.stderr)
        return 2
    if args.list:
        for mutation in chosen:
            print(f"{mutation.id:4} {mutation.file}:{mutation.function}: {mutation.what}")
        return 0
    base_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if not args.no_baseline and not _baseline_passes(chosen, base_env):
        return 2
    survivors = _survivors(chosen, base_env)
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutants caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
