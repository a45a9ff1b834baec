"""cosmic-ray (the mutation tool from PyPI) over the modules of scripts/mutation_sample.py's MODULES.

cosmic-ray mutates files in place, so each module gets a scratch folder of its own
(`--work-dir`/<module>/): a copy of src/, the session (`session.sqlite`) and the config
(`cosmic-ray.toml`). The test command is the module's test files from MODULES, run from the
repository with the copy first on PYTHONPATH (subprocesses the tests start inherit it), stopping at
the first failure; a run over `--timeout` kills the mutant. The worktree's src/ is never written.

Steps, per module: `cosmic-ray init`, then the filters (`cr-filter-operators` with EXCLUDED below,
`cr-filter-pragma`, and ours: mutants inside type annotations, and the triaged EQUIVALENT ones),
`cosmic-ray baseline` (the tests must pass on the unmutated copy), `cosmic-ray exec`, then a
report: every survivor's diff and the tests that ran.

    pip install -e '.[mutation]'
    .venv/bin/python scripts/mutation_tool.py --list --modules observability/shedding.py
    nice -n 15 .venv/bin/python scripts/mutation_tool.py --modules observability/shedding.py \\
        --report shedding.json
    .venv/bin/python scripts/mutation_tool.py --resume --modules ...   # go on with a stopped session

Exits non-zero when the kill rate is under `--floor` (percent).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mutation_sample import MODULES
from mutation_selected import PYTEST_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# cosmic-ray's operators left out (regexes over its names, `cosmic-ray operators`), each with why.
# Kept: comparisons among == != < <= > >= (every pair) and `is` <-> `is not`; `and` <-> `or`;
# `not` added to a condition (AddNot) or dropped; True <-> False; numbers +1 and -1; the binary
# operators' one natural neighbour (KEPT_BINARY); a unary minus or `~` dropped; break <->
# continue; a handler's exception replaced (ExceptionReplacer); a decorator removed; a for loop
# made to run zero times.
KEPT_BINARY = (
    "Add_Sub",
    "Sub_Add",
    "Mul_Div",
    "Div_Mul",
    "Div_FloorDiv",
    "FloorDiv_Div",
    "Mod_FloorDiv",
    "Pow_Mul",
    "BitOr_BitAnd",
    "BitAnd_BitOr",
    "BitXor_BitOr",
    "LShift_RShift",
    "RShift_LShift",
)
EXCLUDED: dict[str, str] = {
    rf"core/ReplaceBinaryOperator_(?!({'|'.join(KEPT_BINARY)})$)": (
        "all-to-all binary replacements (`a + b` to `a ** b`, `a << b`, `a | b`, ...): on the"
        " operands here (str, datetime, Decimal, sets) most are a TypeError wherever the line runs,"
        " so they ask nothing the kept neighbour does not, at a test run each"
    ),
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$": (
        "`==` or `<` made `is`: whether two equal ints or strings are one object is CPython's"
        " caching, not the code's behaviour"
    ),
    r"core/ReplaceComparisonOperator_(Is|IsNot)_(Eq|NotEq|Lt|LtE|Gt|GtE)$": (
        "`is None` made `== None` is equivalent; made `<` it is a TypeError on any run"
    ),
    r"core/ReplaceUnaryOperator_(UAdd|USub|Invert)_(UAdd|USub|Invert|Not)$": (
        "a unary operator swapped for another: `-x` to `+x` is the kept deletion again, to `not x`"
        " or `~x` a type change; the deletions are kept"
    ),
    r"core/Variable(Replacer|Inserter)$": "they need a named variable as argument; none is configured",
}

# delivery/record.py's `_entry_arguments()`: the line three of its mutants change.
_ENTRY_COLUMNS = (
    "return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(7)]"
)

# delivery/engine.py: why `wanted` is never negative, and why `<` or `>=` against a deadline of
# time.monotonic() equals `<=` or `>`.
_WANTED_NOT_NEGATIVE = (
    "`wanted` is never negative: it is the pump's _wanted(), bound minus the attempts in flight (a"
    " lease takes at most the slots wanted, so they never pass the bound), or that min'd with"
    " len(finished), or 0 (settle() has no other caller); so `!= 0` is `> 0`"
)
_SAME_NANOSECOND = (
    "the deadline and the clock are floats of time.monotonic(), which has advanced since the deadline"
    " was read: they are equal at most for one nanosecond, and the drain limit is no promise to the"
    " nanosecond"
)

# Mutants no test can tell from the original, triaged in docs/testing.md: (module, the line's text
# before, after the mutation) -> why. Keyed by text so that they survive code moving around them.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "observability/shedding.py",
        'if scope["type"] != "http" or self.limit <= 0 or scope["path"] in EXEMPT_PATHS:',
        'if scope["type"] > "http" or self.limit <= 0 or scope["path"] in EXEMPT_PATHS:',
    ): (
        'ASGI has three scope types: "http", and "lifespan" and "websocket", which both sort after'
        ' "http": `> "http"` is true exactly when `!= "http"` is'
    ),
    (
        "observability/shedding.py",
        "if self.in_flight >= self.limit:",
        "if self.in_flight == self.limit:",
    ): (
        "in_flight grows by one, only while under the limit, with no await between the check and"
        " the increment: it never passes the limit, so `==` and `>=` agree"
    ),
    ("observability/shedding.py", "@functools.cache", ""): (
        "prometheus_client keeps one child per label value itself: uncached, labels() returns the"
        " same counter, only slower"
    ),
    **{
        (
            "delivery/triggers/tokens.py",
            f'if {name} is not None and type_ != "uninstall":',
            f'if {name} is not None and type_ < "uninstall":',
        ): (
            'every type the service sends ("install", "setup", "manual_*", "uninstall") sorts at or'
            ' before "uninstall", so `< "uninstall"` is true exactly when `!= "uninstall"` is'
        )
        for name in ("user_id", "redirect_uri")
    },
    ("kit/crypto.py", "@dataclass(frozen=True)", "@dataclass(frozen=False)"): (
        "no code assigns to a Keyring's fields (mypy --strict refuses it) or hashes one (none is a"
        " dict key, set member or cache argument): frozen or not, every call gives the same result"
    ),
    ("web/session.py", "@dataclass(frozen=True)", "@dataclass(frozen=False)"): (
        "BrowserSession and DeviceCookie: no code assigns to their fields (mypy --strict refuses"
        " it; a new session is built anew) or hashes one; equality is the same frozen"
        " or not"
    ),
    ("auth/policy.py", "@dataclass(frozen=True)", "@dataclass(frozen=False)"): (
        "Collection and ProviderReader: no code assigns to their fields (mypy --strict refuses it)"
        " or hashes one (none is a dict key, set member or cache argument); equality, which the"
        " tests compare, is the same frozen or not"
    ),
    ("auth/policy.py", "@property", ""): (
        "the two members of the Reader Protocol: it is only named in annotations (postponed by"
        " `from __future__ import annotations`), never instantiated, subclassed or isinstance-checked,"
        " so what its body defines is never read at run time"
    ),
    **{
        ("delivery/lease.py", "free, blocked = 0, False", f"free, blocked = {after}"): (
            "dead values: both statements attempts_of() reads (LEASE, record's _RECORD_AND_LEASE) end"
            " in `FROM slots CROSS JOIN blocked LEFT JOIN leased`, one row at least, and the loop"
            " sets free and blocked from every row"
        )
        for after in ("1, False", "-1, False", "0, True")
    },
    ("delivery/lease.py", "continue", "break"): (
        "a row with a NULL id is the LEFT JOIN's row when nothing was leased, then the only row: the"
        " loop ends there either way (a leased row's id is its primary key, never NULL)"
    ),
    (
        "delivery/lease.py",
        "return attempts, len(attempts) >= free or blocked",
        "return attempts, len(attempts) == free or blocked",
    ): (
        "the statements lease at most `free` (lapsed LIMIT free, due LIMIT free minus the lapsed,"
        " each leased row one of those): len(attempts) never passes free, so `>=` is `==`"
    ),
    (
        "delivery/lease.py",
        'await insert_rows(connection, "webhook_log_entries", list(entries[0]), entries)',
        'await insert_rows(connection, "webhook_log_entries", list(entries[ -1]), entries)',
    ): (
        "the column names: every entry is built by _started_log_entry() with the same keys in the"
        " same order, so the last entry's keys are the first's"
    ),
    (
        "delivery/lease.py",
        "for attempt, entry in zip(attempts, entries, strict=True):",
        "for attempt, entry in zip(attempts, entries, strict=False):",
    ): "entries is built one per attempt just above: the two lists always have the same length",
    (
        "delivery/engine.py",
        "deliverer: Deliverer, *, host: str, results: Sequence[tuple[Attempt, Outcome]] = (),"
        " wanted: int = 0",
        "deliverer: Deliverer, *, host: str, results: Sequence[tuple[Attempt, Outcome]] = (),"
        " wanted: int = -1",
    ): (
        "settle() reads `wanted` only in `wanted > 0` tests (and passes it on only inside them): 0 and"
        " -1 both fail them, so a call without `wanted` records alone and returns the same either way"
    ),
    **{
        (
            "delivery/engine.py",
            "if plan is not None and plan.status == DeliveryStatus.PENDING and due_soon:",
            f"if plan is not None and plan.status {operator} DeliveryStatus.PENDING and due_soon:",
        ): (
            "every plan is plan_next()'s, and only a PENDING plan has a delay (SUCCESSFUL and FAILED"
            " ones have delay None): due_soon is false for any other status, so the condition holds"
            " exactly when `== PENDING` does"
        )
        for operator in (">=", "<=")
    },
    **{
        ("delivery/engine.py", before, before.replace("wanted > 0", "wanted != 0")): _WANTED_NOT_NEGATIVE
        for before in (
            "if wanted > 0 and len(results) >= wanted:",
            "elif wanted > 0:",
            "if state.finished or wanted > 0:",
            "if wanted > 0:",
        )
    },
    **{
        ("delivery/engine.py", "if state.finished or wanted > 0:", f"if state.finished or wanted {after}:"): (
            "a round with nothing finished and nothing wanted then calls _record_and_lease() as well,"
            " which changes nothing: settle() with no results and wanted 0 touches no database and"
            " returns no plans, no leases and more false, and `wanted > 0` guards the pump's flags"
        )
        for after in (">= 0", "> -1")
    },
    **{
        ("delivery/engine.py", "if wanted > 0:", f"if wanted {after}:"): (
            "both copies act alike with wanted 0. In _wanted(), clearing the poke: a round starts"
            " with in_flight below the bound, so while taking, wanted is 0 only without a poke (poke()"
            " sets flag and event together, only here are both cleared), and once not taking (the"
            " deadline passed, the worker stopping: neither turns back) the poke is never read again."
            " In _record_and_lease(), setting more and passing from settle(): wanted 0 with finished"
            " attempts means not taking (the flags are read no more) or more false (passing, set"
            " with it, false too), and settle() wanting nothing returns more false: nothing changes"
        )
        for after in (">= 0", "> -1")
    },
    (
        "delivery/engine.py",
        "if TYPE_CHECKING:  # the context holds the pumps",
        "if not TYPE_CHECKING:  # the context holds the pumps",
    ): (
        "WorkerContext imported at run time as well: context.py imports engine.py only under"
        " TYPE_CHECKING, so there is no import cycle, and the name is used only in annotations,"
        " postponed by `from __future__ import annotations`"
    ),
    **{
        ("delivery/engine.py", "DRAIN_SECONDS = 30.0", f"DRAIN_SECONDS = {seconds}"): (
            "a drain limit a second shorter or longer: nothing states 30 s; it only keeps a pump well"
            " within its job's timeout (300 s), and the tests of the limit set it (0 and 3 s)"
        )
        for seconds in ("29.0", "31.0")
    },
    (
        "delivery/engine.py",
        "return time.monotonic() < deadline and self.context.accepting",
        "return time.monotonic() <= deadline and self.context.accepting",
    ): _SAME_NANOSECOND,
    (
        "delivery/engine.py",
        "if time.monotonic() >= state.deadline and self.context.accepting:",
        "if time.monotonic() > state.deadline and self.context.accepting:",
    ): _SAME_NANOSECOND,
    (
        "delivery/engine.py",
        "wanted = state.bound - len(state.in_flight) if taking and (state.more or self.poked) else 0",
        "wanted = state.bound - len(state.in_flight) if taking and (state.more or self.poked) else -1",
    ): (
        "-1 wanted goes where 0 does: min() with len(finished) keeps it -1, and everything that reads"
        " it asks `wanted > 0` (settle() then records alone)"
    ),
    (
        "delivery/engine.py",
        "state.passing = found_more and (state.passing or len(leased) < wanted)",
        "state.passing = found_more and (state.passing or len(leased) != wanted)",
    ): "a lease takes at most the slots wanted (its LIMIT): len(leased) never passes wanted, so `!=` is `<`",
    **{
        (
            "delivery/engine.py",
            "state.passing = found_more and (state.passing or len(leased) < wanted)",
            after,
        ): (
            "passing is read only while more is true and no poke came; the mutant sets it also after a"
            " lease that filled every slot wanted (not min'd: bound minus those in flight), which"
            " leaves every slot busy: each later round's free slots are then exactly its finished"
            " attempts, and min(free, finished) changes nothing. Where it sets passing with"
            " found_more false, more is false and nothing is wanted without a poke anyway"
        )
        for after in (
            "state.passing = found_more and (state.passing or len(leased) <= wanted)",
            "state.passing = found_more or (state.passing or len(leased) < wanted)",
        )
    },
    (
        "delivery/engine.py",
        "if taking and len(state.in_flight) < state.bound:",
        "if taking and len(state.in_flight) != state.bound:",
    ): (
        "a lease takes at most the free slots _wanted() asked for, bound minus in flight: in_flight"
        " never passes the bound, so `!=` is `<`"
    ),
    ("delivery/engine.py", "if attempt + 1 == SETTLE_TRIES:", "if attempt + 1 >= SETTLE_TRIES:"): (
        "attempt runs over range(SETTLE_TRIES): attempt + 1 never passes SETTLE_TRIES, so `>=` is `==`"
    ),
    (
        "delivery/engine.py",
        "for (attempt, _), plan in zip(finished, plans, strict=True):",
        "for (attempt, _), plan in zip(finished, plans, strict=False):",
    ): (
        "the plans are settle()'s, record.report()'s: one per finished attempt (None for a lost"
        " lease), so the two lists always have one length"
    ),
    ("delivery/send.py", 'if attempt.kind == "webhook"', 'if attempt.kind >= "webhook"'): (
        'outbound_deliveries\' CHECK allows only the kinds "webhook" and "trigger", and "trigger"'
        ' sorts before "webhook": `>= "webhook"` is true exactly when `== "webhook"` is'
    ),
    (
        "delivery/send.py",
        'content=request.content if attempt.method != "GET" else None,',
        'content=request.content if attempt.method > "GET" else None,',
    ): (
        'the service sends only two methods: "POST" (webhooks, dispatch.py and the webhook test) and'
        ' "GET" (triggers, triggers/scheduling.py); `> "GET"` is true for "POST", false for "GET",'
        ' exactly as `!= "GET"`'
    ),
    (
        "delivery/send.py",
        'content=request.content if attempt.method != "GET" else None,',
        'content=request.content if attempt.method >= "GET" else None,',
    ): (
        'only "POST" and "GET" are sent; a GET is a trigger, whose content is always b"", and httpx'
        ' sends a GET with content b"" exactly as with None (no Content-Length, an empty body)'
    ),
    **{
        ("auth/secrets.py", "_REENCRYPT_BATCH = 500", f"_REENCRYPT_BATCH = {size}"): (
            "a batch size: re-encryption walks every row in batches of any size alike (the test of"
            " its batches sets the size to 1)"
        )
        for size in (499, 501)
    },
    **{
        ("auth/secrets.py", '_DUMMY_SECRET = "0" * 64', f'_DUMMY_SECRET = "0" * {length}'): (
            "the dummy only gives every check the same work; no secret is compared equal to it"
            " (`previous is not None` and `app is not None`, which tests/auth/test_identity_token.py"
            " holds, make it so)"
        )
        for length in (63, 65)
    },
    (
        "auth/secrets.py",
        "if len(rows) < _REENCRYPT_BATCH:",
        "if len(rows) != _REENCRYPT_BATCH:",
    ): (
        "the SELECT has LIMIT _REENCRYPT_BATCH: a batch never has more rows, so `!=` is true"
        " exactly when `<` is"
    ),
    (
        "auth/secrets.py",
        "for column, value in zip(columns, row[1:], strict=True)",
        "for column, value in zip(columns, row[1:], strict=False)",
    ): "the row is the id and exactly these columns (the SELECT names them): the lengths always agree",
    ("auth/app_tokens.py", "@dataclass(slots=True)", "@dataclass(slots=False)"): (
        "_Secrets is only read, attribute by attribute, by app_secret_matches(): no code sets an"
        " attribute it does not declare or looks at its __slots__ or __dict__, so the results are"
        " the same with slots or without"
    ),
    **{
        ("auth/app_tokens.py", line, line.replace("rows[0]", "rows[ -1]")): (
            "the statement's rows are at most one (`WHERE apps.id = :app_id`, the primary key), so"
            " the last row is the first"
        )
        for line in (
            'decrypt(rows[0]["secret"]),',
            'decrypt_optional(rows[0]["previous_secret"]),',
            'rows[0]["previous_secret_expires_at"],',
        )
    },
    ("auth/app_tokens.py", "return rows[0] if rows else None", "return rows[ -1] if rows else None"): (
        "_installation_user's rows are at most one: one user (`users.id = :user_id`, the primary"
        " key), its one organization (joined on the primary key) and at most one installation of"
        " the app there (the unique constraint on app_installations (app_id, organization_id))"
    ),
    **{
        (
            "auth/app_tokens.py",
            "if app_id is None or user_id is None or organization_id is None:",
            after,
        ): (
            "a claim left None goes on as a NULL parameter, and `= NULL` matches no row: no app's"
            " secret (`apps.id`), no user (`users.id`, `users.organization_id`), no installation"
            " (`app_installations.app_id`), so the token is refused all the same, with or without a"
            " secret (test_app_token_auth.py's `without_*` cases hold the 401)"
        )
        for after in (
            "if app_id is None and user_id is None or organization_id is None:",
            "if app_id is None or user_id is None and organization_id is None:",
        )
    },
    **{
        ("delivery/partitions.py", "purged_default_rows: int = 0", f"purged_default_rows: int = {n}"): (
            "a dead default: maintain() is the only maker of a Maintenance and always sets"
            " purged_default_rows from its DELETE before returning it"
        )
        for n in ("1", "-1")
    },
    (
        "delivery/partitions.py",
        "result.purged_default_rows = int(status.split()[-1])",
        "result.purged_default_rows = int(status.split()[1])",
    ): 'a DELETE\'s status is two words ("DELETE 5"): the second is the last',
    (
        "auth/dependencies.py",
        'if key is not None and scheme == "bearer" and authenticate_app is not None:',
        'if key is not None and scheme <= "bearer" and authenticate_app is not None:',
    ): (
        'api_token_key() gives a key only under the "token" and "bearer" schemes, and "token" sorts'
        ' after "bearer": with a key, `<= "bearer"` is true exactly when `== "bearer"` is'
    ),
    ("auth/dependencies.py", "if TYPE_CHECKING:", "if not TYPE_CHECKING:"): (
        "the import of auth.app_tokens then runs at import time too (no cycle: it imports nothing"
        " that imports auth.dependencies; create_app() imports it anyway, and its module body only"
        " compiles SQL); the name it binds is only in a local variable's annotation, which Python"
        " never evaluates"
    ),
    **{
        ("auth/dependencies.py", "@dataclass(frozen=True, slots=True)", after): (
            "Reader and Writer: made only by the kinds' dependencies and read attribute by attribute;"
            " no code assigns to their fields (mypy --strict refuses it), hashes one (FastAPI caches"
            " a dependency by its callable, not its value), or looks at __slots__, __dict__ or a"
            " weak reference: the results are the same"
        )
        for after in ("@dataclass(frozen=False, slots=True)", "@dataclass(frozen=True, slots=False)")
    },
    ("auth/dependencies.py", "auto_error=False,", "auto_error=True,"): (
        "APIKeyHeader reads auto_error only in __call__, and _authorization_header is never called:"
        " documents_security puts it in route.dependant after FastAPI built the request handler, for"
        " OpenAPI only (tests/kit/test_routing.py holds that it is never resolved), and OpenAPI does"
        " not show auto_error"
    ),
    (
        "auth/dependencies.py",
        '[{**error, "loc": ("path", name)} for error in exc.errors(include_url=False)]',
        '[{**error, "loc": ("path", name)} for error in exc.errors(include_url=True)]',
    ): (
        "include_url only adds each error's `url` key; the one reader of a RequestValidationError's"
        " errors, kit/errors.validation_errors(), takes only loc, type, msg and ctx (the console's"
        " handler reads none), so the 400 body is the same"
    ),
    (
        "catalog/visibility.py",
        "if isinstance(organization_id, uuid.UUID):",
        "if not isinstance(organization_id, uuid.UUID):",
    ): (
        "both branches select the same rows for a value and for a column (the partner pair, looked"
        " up from either side); the branch only chooses the query plan, which the benchmark measures"
    ),
    ("kit/throttle.py", "@dataclass(frozen=True)", "@dataclass(frozen=False)"): (
        "Subject: made by the callers in a list and read attribute by attribute; no code assigns to"
        " its fields (mypy --strict refuses it) or hashes one (none is a dict key, set member or"
        " cache argument): frozen or not, every call gives the same result"
    ),
    **{
        (
            "kit/throttle.py",
            "hashed = hashlib.sha256(self.value.encode()).hexdigest()[:32]",
            f"hashed = hashlib.sha256(self.value.encode()).hexdigest()[: {length}]",
        ): (
            "Subject.key() is the only place a key is named, for every reader and writer, and the"
            " key format is documented nowhere: a prefix of 31 or 33 hex digits of the same SHA-256"
            " changes every key alike (124 bits or more, no collision to be found either way)"
        )
        for length in (31, 33)
    },
    **{
        (
            "kit/throttle.py",
            "return max((int(ttl) for ttl in ttls if ttl and int(ttl) > 0), default=0)",
            f"return max((int(ttl) for ttl in ttls if ttl and int(ttl) {after}), default=0)",
        ): (
            "Redis's TTL is an integer: -2 (no key), -1 (no expiry) or the seconds left; `ttl and`"
            " already leaves 0 out, and `>= 0` / `> -1` are false for -1 and -2 as `> 0` is"
        )
        for after in (">= 0", "> -1")
    },
    ("auth/service.py", "return self.kind != USER", "return self.kind < USER"): (
        'a kind is "user", "app_as_user" or "app_user" (the Kind Literal; every Principal is made'
        ' with one of the three constants), and both app kinds sort before "user": `< USER` is'
        " true exactly when `!= USER` is"
    ),
    ("auth/service.py", "if kind == USER:", "if kind >= USER:"): (
        'of the three kinds only "user" sorts at or after "user" ("app_as_user" and "app_user"'
        " sort before it): `>= USER` is true exactly when `== USER` is"
    ),
    ("auth/service.py", "if kind == APP_AS_USER:", "if kind <= APP_AS_USER:"): (
        'past `kind == USER` a kind is "app_as_user" or "app_user", and "app_user" sorts after'
        ' "app_as_user" ("u" > "a" after "app_"): `<= APP_AS_USER` is true exactly when `==` is'
    ),
    (
        "auth/service.py",
        "return [attribute.columns[0].label(prefix + attribute.key)"
        " for attribute in inspect(model).column_attrs]",
        "return [attribute.columns[ -1].label(prefix + attribute.key)"
        " for attribute in inspect(model).column_attrs]",
    ): (
        "_columns() is only called for User and Organization, whose every column attribute maps"
        " exactly one column (no column_property of several, no inheritance): the first column is"
        " the last"
    ),
    ("auth/service.py", "row = rows[0]", "row = rows[ -1]"): (
        "_TOKEN_PRINCIPAL returns at most one row: key_digest is unique, a token has one user and"
        " a user one organization, and the outer join's installation is the one whose app_user_id"
        " is the user (uq_app_installations_app_user_id): the first row is the last"
    ),
    **{
        ("auth/service.py", "_NO_CACHE = PrincipalCache(size=0, seconds=0)", after): (
            "_NO_CACHE is never turned on (only PrincipalListener turns on the app's own cache):"
            " get() returns None and put() keeps nothing before reading size or seconds, and"
            " nothing asks its `enabled`"
        )
        for after in (
            "_NO_CACHE = PrincipalCache(size= 1, seconds=0)",
            "_NO_CACHE = PrincipalCache(size= -1, seconds=0)",
            "_NO_CACHE = PrincipalCache(size=0, seconds= 1)",
            "_NO_CACHE = PrincipalCache(size=0, seconds= -1)",
        )
    },
    ("kit/pagination.py", "@dataclass(frozen=True)", "@dataclass(frozen=False)"): (
        "PageParams, _Cursor and _Walk: no code assigns to their fields (mypy --strict refuses it) or"
        " hashes one (none is a dict key, set member or cache argument, and FastAPI does not hash a"
        " dependency's value); equality, which the cursor tests compare, is the same frozen or not"
    ),
    (
        "kit/pagination.py",
        'return _Walk(cursor, params.ordering == "-created_at", cursor is not None and cursor.backwards)',
        'return _Walk(cursor, params.ordering <= "-created_at", cursor is not None and cursor.backwards)',
    ): (
        'an ordering is "created_at" or "-created_at" (the Query\'s Literal refuses others; the'
        ' console passes "-created_at"), and "created_at" sorts after "-created_at": `<=` is `==`'
    ),
    (
        "kit/pagination.py",
        'datetime.fromisoformat(created_at), uuid.UUID(row_id), direction == "p", cursor_ordering',
        'datetime.fromisoformat(created_at), uuid.UUID(row_id), direction >= "p", cursor_ordering',
    ): (
        "a payload passes the HMAC check only as encode_cursor() wrote it, under the service's secret"
        ' key, and its direction is "p" or "n"; "n" sorts before "p", so `>=` is `==` on every cursor'
        " that gets this far"
    ),
    **{
        (
            "kit/pagination.py",
            "if len(signature) != 16 or not hmac.compare_digest(signature, _sign(payload, key)):",
            f"if len(signature) {operator} 16 or not hmac.compare_digest(signature, _sign(payload, key)):",
        ): (
            "the signature is blob[:16], never longer than 16 bytes, so `< 16` is `!= 16`; and `> 16`"
            " is never true, but a shorter signature still fails compare_digest against _sign()'s 16"
            " bytes (unequal lengths compare False), with the same error"
        )
        for operator in ("<", ">")
    },
    (
        "kit/pagination.py",
        "return bool(await session.scalar(select(exists(statement.limit(1).subquery()))))",
        "return bool(await session.scalar(select(exists(statement.limit( 2).subquery()))))",
    ): "EXISTS is true for one row or two alike: the limit only spares reading more",
    **{
        ("kit/pagination.py", line, line.replace("page_size + 1", "page_size + 2")): (
            "_page() reads only `len(rows) > page_size` and `rows[:page_size]`: one row past the page"
            " tells that more follow, and a second one changes neither (with exactly page_size + 1"
            " rows left, both limits return them all)"
        )
        for line in (
            "(await session.execute(query.options(*options).order_by(*order)"
            ".limit(params.page_size + 1))).all()",
            "ordered[: params.page_size + 1],",
            "rows = list(await statement.fetch(db, limit=params.page_size + 1, **values))",
        )
    },
    (
        "kit/pagination.py",
        'return bool(page[0]["_other_side"])  # the page query\'s own EXISTS column',
        'return bool(page[ -1]["_other_side"])  # the page query\'s own EXISTS column',
    ): (
        "`_other_side` is an uncorrelated EXISTS (`.correlate(None)`, bound parameters only): one"
        " value for the whole statement, the same on every row, and the page is never empty here"
    ),
    (
        "delivery/tasks.py",
        "for host, result in zip(inline, results, strict=True):",
        "for host, result in zip(inline, results, strict=False):",
    ): (
        "asyncio.gather returns exactly one result per awaitable it is given (return_exceptions=True:"
        " failures included), so `results` is always as long as `inline` and `strict` never fires"
    ),
    **{
        ("delivery/tasks.py", line, line.replace("keep_result=0", "keep_result= -1")): (
            "arq keeps a finished job's result only when the function's keep_result is above 0 (or"
            " keep_result_forever): -1 keeps none, as 0 does; a job failed for max tries keeps the"
            " worker's keep_result, not the function's, either way"
        )
        for line in (
            "func(dispatch_events, keep_result=0, max_tries=3),",
            "func(deliver_outbound, keep_result=0, max_tries=3, timeout=300),",
            "func(sweep_outbound, keep_result=0),",
            "func(purge_webhook_logs, keep_result=0),",
            "func(maintain_log_partitions, keep_result=0),",
            "keep_result=0,",  # the cron jobs' (a CronJob's keep_result counts as a function's)
        )
    },
    **{
        (
            "delivery/tasks.py",
            "func(deliver_outbound, keep_result=0, max_tries=3, timeout=300),",
            f"func(deliver_outbound, keep_result=0, max_tries=3, timeout= {seconds}),",
        ): (
            "an arbitrary bound nothing documents: a deliver_outbound job is one pump, which takes new"
            " attempts for DRAIN_SECONDS (30 s) and then waits at most a webhook timeout for those in"
            " flight, far within 299, 300 or 301 s; only a job running within a second of 300 s could"
            " tell them apart"
        )
        for seconds in (299, 301)
    },
    (
        "delivery/tasks.py",
        "second=set(range(0, 60, interval)),",
        "second=set(range(0, 61, interval)),",
    ): (
        "adds second 60 only when the interval divides 60, and arq matches the set against"
        " datetime.second (0 to 59): 60 never matches, the sweeper's schedule is the same"
    ),
    **{
        ("delivery/tasks.py", before, after): (
            "the partitions' minute and second within the hour are an arbitrary choice (no doc names"
            " one): the docs promise hourly and at start-up"
            " (test_finished_jobs_keep_no_result_so_the_same_job_id_can_be_enqueued_again), and the"
            " comment partitions before the purge at xx:17:30; xx:15:01, xx:14:00 and xx:16:00 keep"
            " all three, and partitions are made 7 days ahead, so a minute or second either way"
            " changes nothing observable"
        )
        for before, after in (
            ("second={0},", "second={ 1},"),
            ("minute={15},", "minute={ 14},"),
            ("minute={15},", "minute={ 16},"),
        )
    },
    **{
        ("delivery/tasks.py", before, after): (
            "the purge's minute and second within the hour are an arbitrary choice: the docs promise"
            " an hourly purge (test_the_purge_runs_every_hour: one minute and second of every hour),"
            " after the partitions' run at xx:15:00; any of xx:17:30, xx:16:30, xx:18:30, xx:17:31,"
            " xx:17:29 keeps both, and retention is counted in days"
        )
        for before, after in (
            ("minute={17},", "minute={ 16},"),
            ("minute={17},", "minute={ 18},"),
            ("second={30},", "second={ 31},"),
            ("second={30},", "second={ 29},"),
        )
    },
    **{
        (
            "delivery/listener.py",
            "await asyncio.wait_for(lost.wait(), 5)",
            f"await asyncio.wait_for(lost.wait(), {n})",
        ): (
            "the wait always ends on `lost`: every way the idle LISTEN connection closes (the server or"
            " the network dropping it, a malformed message) goes through asyncpg's connection_lost, whose"
            " _cleanup() calls the termination listener; the closes that skip it (_coreproto_error, a"
            " cancel's timeout) need a statement in flight, and none runs on it while it waits. The"
            " timeout only wakes the loop to find the connection still open: 4, 5 or 6 s alike"
        )
        for n in (4, 6)
    },
    ("delivery/sweeper.py", ".limit(1)", ".limit( 2)"): (
        "the undispatched-event query is read with session.scalar(), which returns the first column"
        " of the first row and discards the rest: with LIMIT 2 it returns the same id (or None when"
        " no row), and the sweeper only checks it against None"
    ),
    **{
        ("web/session.py", before, before.replace("(24)", f"( {n})")): (
            "the length of a random token (the session id, the device cookie's nonce) is not a"
            " documented format (docs/security.md promises none): 23 to 25 random bytes are all"
            " far beyond guessing, and every reader only compares a token with the one it issued"
        )
        for before in (
            "return BrowserSession(sid=secrets.token_urlsafe(24))",
            "sid=secrets.token_urlsafe(24),",
            "value = _serializer(secret_key, _DEVICE_SALT).dumps("
            '{"uid": str(user.id), "n": secrets.token_urlsafe(24)})',
        )
        for n in (23, 25)
    },
    **{
        (
            "web/session.py",
            'return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:32]',
            f'return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[: {n}]',
        ): (
            "the password digest is only compared with password_digest() of the same code"
            " (web.accounts), never stored or documented: 31 or 33 hex digits change with the"
            " password exactly as 32 do (a collision of 124 bits is as out of reach as one of 128)"
        )
        for n in (31, 33)
    },
    ("web/session.py", 'if value is None or value == "":', 'if value is None or value <= "":'): (
        "value is a str here (None is handled first; every caller passes a query, form or URL"
        ' string): the empty string sorts before every other, so `<= ""` is true exactly when'
        ' `== ""` is'
    ),
    (
        "web/session.py",
        'port = parts.port or (443 if scheme == "https" else 80)',
        'port = parts.port or (443 if scheme >= "https" else 80)',
    ): (
        'the line above returns unless scheme is "http" or "https"; "http" sorts before "https",'
        ' so `>= "https"` is true exactly when `== "https"` is'
    ),
    ("delivery/matching.py", "@dataclass(frozen=True)", "@dataclass(frozen=False)"): (
        "Subscription, InstallationView, Snapshot, EventView and Match: no code assigns to their"
        " fields (mypy --strict refuses it) or hashes one (they live in lists and as dict values,"
        " never as keys, set members or cache arguments); equality is the same frozen or not"
    ),
    **{
        ("delivery/matching.py", before, after): (
            "AppMatcher.size is a dead counter: nothing in the service, its metrics or logs reads"
            " it, so what it counts from changes no result"
        )
        for before, after in (
            ("self.size = 0", "self.size = 1"),
            ("self.size = 0", "self.size = -1"),
            ("self.size += 1", "self.size += 0"),
            ("self.size += 1", "self.size += 2"),
        )
    },
    ("delivery/matching.py", "if segment == WILDCARD:", "if segment <= WILDCARD:"): (
        "every stored pattern passed pattern_error() (the API and the console both validate it as a"
        " ChannelPattern, the only way in):"
        " its segments are `*`, a `{placeholder}`, the prefix's words or literals of"
        " [A-Za-z0-9._~-], and all but `*` sort after it, so `<=` is `==`"
    ),
    ("delivery/matching.py", "if index == depth:", "if index >= depth:"): (
        "index starts at 0 and a node is pushed with index + 1 only while index < depth: it never"
        " passes depth, so `>=` is `==`"
    ),
    ("delivery/matching.py", "is_app: ClassVar[bool] = True", "is_app: ClassVar[bool] = False"): (
        "an InstallationView is a policy reader only for organization and user collections"
        " (reader_for_event() gives a ProviderReader for provider ones), where refusal() reads"
        " is_app only for its message, which may_read() drops: every match is the same"
    ),
    ("delivery/matching.py", "if len(found) < 2:", "if len(found) < 1:"): (
        "one match then goes through _one_per_endpoint(), which returns it alone (its app's"
        " matcher is there: the match came from it), as `list(found.values())` does"
    ),
    **{
        (
            "delivery/matching.py",
            "if subscription.channel_pattern == INSTALLATIONS_PATTERN and subscription.wants(event.action):",
            f"if subscription.channel_pattern {operator} INSTALLATIONS_PATTERN"
            " and subscription.wants(event.action):",
        ): (
            "_match_owner() binds only {app_organization_id} and {app_id}; every other valid pattern"
            " has `users` or an unbound {organization_id} where the channel has `orgs` and the owner's"
            " id, so only INSTALLATIONS_PATTERN itself matches there and the test is always true"
        )
        for operator in ("<=", ">=")
    },
    **{
        ("delivery/retry.py", "attempt_count: int = 0", f"attempt_count: int = {n}"): (
            "a dead default: plan_next() is the only maker of a Plan and passes attempt_count to"
            " each of its three Plan(...) calls"
        )
        for n in ("1", "-1")
    },
    **{
        (
            "delivery/retry.py",
            "return max((moment - now).total_seconds(), 0.0)",
            f"return max((moment - now).total_seconds(), {floor})",
        ): (
            "plan_next() is retry_after_seconds()'s only caller and waits `max(retry_after, 1.0)`:"
            " a Retry-After moment in the past (or under a second ahead) waits 1 s whether the"
            " floor here is 0, 1 or -1"
        )
        for floor in ("1.0", "-1.0")
    },
    (
        "delivery/retry.py",
        "if 200 <= code < 300 or (redirect_delivers and 300 <= code < 400):",
        "if 199 <= code < 300 or (redirect_delivers and 300 <= code < 400):",
    ): (
        "no outcome has status code 199: the outbound pool speaks HTTP/1.1 only, whose h11 reads"
        " 100-199 as informational answers and waits for the final one (and refuses codes under"
        " 100); an attempt without a final answer is an error with no code"
    ),
    (
        "delivery/retry.py",
        "if 200 <= code < 300 or (redirect_delivers and 300 <= code < 400):",
        "if 200 <= code < 300 or (redirect_delivers and 299 <= code < 400):",
    ): (
        "299 already passes the `or`'s first half (`200 <= code < 300`): the second decides only"
        " codes from 300 up"
    ),
    ("delivery/retry.py", "if 300 <= code < 400:", "if 299 <= code < 400:"): (
        "classify() has returned success for 299 on the line before, whatever redirect_delivers:"
        " no code 299 reaches this test"
    ),
    ("delivery/retry.py", "redirect_delivers: bool = False,", "redirect_delivers: bool = True,"): (
        "a dead default: record._recording(), plan_next()'s only caller, always passes"
        ' redirect_delivers (`attempt.kind == "trigger"`)'
    ),
    (
        "delivery/retry.py",
        "if outcome.status_code == 410 or attempt_count >= max_attempts:",
        "if outcome.status_code == 410 or attempt_count == max_attempts:",
    ): (
        "a planned attempt's attempt_count never passes its max_attempts: a lease adds one to a"
        " pending delivery's (always below max_attempts: created at 0 with max_attempts >= 1, left"
        " pending only below it, redelivery and recovery raise max_attempts to at least"
        " attempt_count + 1) or a lapsed one's below it, and send() lowers max_attempts only to"
        " attempt_count; so `==` and `>=` agree"
    ),
    **{
        ("delivery/record.py", line, line.replace('kind == "trigger"', 'kind <= "trigger"')): (
            "outbound_deliveries.kind is CHECKed to 'webhook' or 'trigger', and \"webhook\" sorts after"
            ' "trigger": `<= "trigger"` is true exactly when `== "trigger"` is'
        )
        for line in (
            'ok, reason = classify(outcome, redirect_delivers=attempt.kind == "trigger")',
            'redirect_delivers=attempt.kind == "trigger",',
            'success, reason = classify(outcome, redirect_delivers=attempt.kind == "trigger")',
        )
    },
    ("delivery/record.py", _ENTRY_COLUMNS, _ENTRY_COLUMNS.replace("strict=True", "strict=False")): (
        "every row is the 7-tuple `_entry_row()` returns: the rows zipped are of one length, strict or not"
    ),
    **{
        ("delivery/record.py", _ENTRY_COLUMNS, _ENTRY_COLUMNS.replace("range(7)", f"range( {n})")): (
            "the empty batch's arrays are never built: engine.settle(), the only caller of record()"
            " and record_and_lease(), calls them only with at least one result"
        )
        for n in (6, 8)
    },
    (
        "delivery/record.py",
        "return _recorded(results, plans, rows[0], now), leased, more",
        "return _recorded(results, plans, rows[ -1], now), leased, more",
    ): (
        "the statement returns at least one row (one-row `slots` and `blocked` LEFT JOIN leased), and"
        " `owned` is an uncorrelated scalar subquery of the statement's one `finished`: every row"
        " has the same"
    ),
    (
        "delivery/record.py",
        "for (attempt, outcome), plan in zip(recorded.results, recorded.plans, strict=True):",
        "for (attempt, outcome), plan in zip(recorded.results, recorded.plans, strict=False):",
    ): (
        "`_recording()` makes one plan per result, and settle()'s placeholder Recorded (kept only"
        " when there are no results) has no plans: the two are always of one length"
    ),
    **{
        ("delivery/maintenance.py", "PURGE_BATCH = 5000", f"PURGE_BATCH = {size}"): (
            "a batch size: the purge deletes batch after batch until one comes back short, so every"
            " row older than the cutoff goes and the count returned is the same with batches of any"
            " size (tests/delivery/test_maintenance.py's batch test sets the size to 2)"
        )
        for size in (4999, 5001)
    },
    **{
        (
            "delivery/maintenance.py",
            'count = int(getattr(result, "rowcount", 0) or 0)',
            f'count = int(getattr(result, "rowcount", {default}) or 0)',
        ): (
            "a dead default: session.execute() of a DELETE returns a CursorResult, which always has a"
            " rowcount (the exact counts test_maintenance.py asserts would be 0 without one)"
        )
        for default in (1, -1)
    },
    ("delivery/maintenance.py", "if count < PURGE_BATCH:", "if count != PURGE_BATCH:"): (
        "the DELETE takes the rows of `id IN (SELECT id ... LIMIT PURGE_BATCH)`, ids being primary"
        " keys: a batch never deletes more than PURGE_BATCH rows, so `!=` is true exactly when `<` is"
    ),
}

# Equivalent mutants of a line whose text the module repeats, where a mutant of the other copy is
# killed: keyed (module, line before, line after, the next non-blank line of the source), so the
# entry leaves out this copy's mutant only.
EQUIVALENT_BEFORE: dict[tuple[str, str, str, str], str] = {
    (
        "delivery/engine.py",
        "self.poked = False",
        "self.poked = True",
        "self.wakeup = asyncio.Event()",
    ): (
        "a new pump marked poked (its event not set): its first round leases anyway (more starts"
        " true), which clears the mark, and a first round that takes nothing (drain limit, shutdown)"
        " reads it only in `self.poked and taking`; _wanted()'s copy of the line, clearing a poke, is"
        " killed by a test"
    ),
    (
        "delivery/send.py",
        "except Exception as error:",
        "except CosmicRayTestingException as error:",
        'logger.warning("delivery %s: sending failed (%s)", attempt.id, type(error).__name__)',
    ): (
        "`outbound.client.send` catches every Exception in its own body and returns it as the"
        " attempt's outcome, so nothing reaches the handler around it (kept so that an attempt never"
        " crashes its endpoint's pump, whatever `send` becomes); the request builder's handler above,"
        " the same line, is killed by a test"
    ),
}


@dataclass
class Outcome:
    id: str
    operator: str
    outcome: str  # killed, timeout, survived, incompetent, filtered, equivalent
    diff: str
    detail: str


def _module_dir(work_dir: Path, module: str) -> Path:
    return work_dir / module.replace("/", "__").removesuffix(".py")


def _config(folder: Path, module: str, timeout: float, selected: bool, tests_only: str | None = None) -> Path:
    """Write the module's cosmic-ray config; return its path."""
    tests = tests_only or " ".join(MODULES[module])
    command = f"{sys.executable} -m pytest -x -q -rA {' '.join(PYTEST_OPTIONS)} {tests}"
    if selected:
        command = f"{sys.executable} {ROOT / 'scripts' / 'mutation_selected.py'} {folder}"
    excluded = ", ".join(json.dumps(pattern) for pattern in EXCLUDED)
    text = (
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(str(folder / 'src' / 'apps_api' / module))}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [{excluded}]\n"
    )
    path = folder / "cosmic-ray.toml"
    path.write_text(text)
    return path


def _runtime_lines(source: str) -> set[int]:
    """Lines inside a function's body: they run when it is called, not when the module is imported."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
            lines.update(range(node.body[0].lineno, node.end_lineno + 1))
    return lines


def _seconds(durations_log: Path | None) -> dict[str, float]:
    """Each test's set-up, call and tear-down time, from pytest's `--durations=0 --durations-min=0`."""
    if durations_log is None:
        return {}
    seconds: dict[str, float] = {}
    pattern = r"^(\d+\.\d+)s (?:setup|call|teardown) +(\S.*)$"
    for took, test in re.findall(pattern, durations_log.read_text(), flags=re.MULTILINE):
        seconds[test] = seconds.get(test, 0.0) + float(took)
    return seconds


def _write_selection(
    folder: Path, module: str, contexts: Path, durations_log: Path | None, suite: float
) -> None:
    """selection.json for scripts/mutation_selected.py: which of the module's tests ran each statement.

    `contexts` is a combined coverage data file recorded with `-p coverage_contexts` (a context per
    test, named by its node id) over at least the module's test files; over the whole suite when
    `suite` (seconds) lets a run take tests of other files too.
    """
    from coverage import CoverageData
    from coverage.parser import PythonParser

    source = (ROOT / "src" / "apps_api" / module).read_text()
    parser = PythonParser(text=source)
    parser.parse_source()
    runtime = _runtime_lines(source)
    files = MODULES[module]
    data = CoverageData(basename=str(contexts))
    data.read()
    measured = [name for name in data.measured_files() if name.endswith(f"src/apps_api/{module}")]
    tests_of: dict[int, set[str]] = {}
    for name in measured:
        for line, names in data.contexts_by_lineno(name).items():
            ran = {test for test in names if test and (suite or test.split("::", 1)[0] in files)}
            tests_of.setdefault(parser.first_line(line), set()).update(ran)
    seconds = _seconds(durations_log)
    order = sorted(
        {test for tests in tests_of.values() for test in tests},
        key=lambda test: (
            (0, files.index(test.split("::", 1)[0]), 0.0, test)
            if test.split("::", 1)[0] in files
            else (1, 0, seconds.get(test, 5.0), test)
        ),
    )
    selection = {
        "module": module,
        "files": list(files),
        "statement_of": {str(line): parser.first_line(line) for line in sorted(runtime)},
        "tests_of": {str(line): sorted(tests) for line, tests in sorted(tests_of.items()) if tests},
        "order": order,
        "seconds": {test: took for test, took in seconds.items() if test in set(order)},
        "suite_seconds": suite,
    }
    # A node id pytest cannot find would fail the run and count the mutant killed: every one must
    # be collected, on the unmutated copy, before any mutant runs.
    if order:
        collect = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *order]
        listed = subprocess.run(  # noqa: S603
            collect, cwd=ROOT, env=_env(folder), capture_output=True, text=True, check=False
        )
        found = set(re.findall(r"^(\S+::\S.*)$", listed.stdout, flags=re.MULTILINE))
        if listed.returncode != 0 or found != set(order):
            missing = sorted(set(order) - found)[:5]
            output = listed.stdout[-2000:]
            raise SystemExit(f"{module}: selected tests not collected as named: {missing}\n{output}")
    (folder / "selection.json").write_text(json.dumps(selection, indent=1))
    (folder / "original.py").write_text(source)
    print(f"{module}: {len(order)} tests ran its statements (in their own processes)", flush=True)


def _fresh_copy(folder: Path) -> None:
    """src/ copied anew: a mutant left in place by a stopped run is undone."""
    copy = folder / "src"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))


def _env(folder: Path) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**base, "PYTHONPATH": str(folder / "src")}


def _cosmic(args: list[str], folder: Path) -> None:
    """Run one cosmic-ray command from the repository (the tests' paths are relative to it)."""
    subprocess.run(args, cwd=ROOT, env=_env(folder), check=True)  # noqa: S603


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) of every type annotation (strings at run time: `from __future__ import annotations`)."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        found: list[ast.expr | None] = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node.returns)
        for annotation in found:
            if annotation is not None and annotation.end_lineno is not None:
                end = (annotation.end_lineno, annotation.end_col_offset or 0)
                spans.append(((annotation.lineno, annotation.col_offset), end))
    return spans


def _binary_operators(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where binary operators stand (between their operands): cosmic-ray also takes the bare `*`
    of keyword-only parameters for one, and its `/` mutant (positional-only) changes no call."""
    gaps = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and node.left.end_lineno is not None:
            left_end = (node.left.end_lineno, node.left.end_col_offset or 0)
            gaps.append((left_end, (node.right.lineno, node.right.col_offset)))
    return gaps


def _left_out(source: str, mutation: Any, module: str) -> str | None:
    """Why a mutant is left out (an annotation, no binary operator, EQUIVALENT), or None."""
    start = tuple(mutation.start_pos)
    if any(low <= start < high for low, high in _annotation_spans(source)):
        return "filtered: in a type annotation"
    binary = mutation.operator_name.startswith("core/ReplaceBinaryOperator_")
    if binary and not any(low <= start < high for low, high in _binary_operators(source)):
        return "filtered: not a binary operator (the `*` of keyword-only parameters)"
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    operator = get_operator(mutation.operator_name)(**mutation.operator_args)
    try:
        mutated = mutate_code(source, operator, mutation.occurrence)
    except AttributeError:
        # cosmic-ray 8.7.0's ExceptionReplacer fails on a dotted name in an except tuple
        # (`except (binascii.Error, ValueError)`): the mutant cannot be made.
        return "filtered: cosmic-ray cannot make this mutant (a dotted name in an except tuple)"
    why = _equivalent(module, source, mutated) if mutated else None
    return f"equivalent: {why}" if why else None


def _equivalent(module: str, source: str, mutated: str) -> str | None:
    """Why the mutant that turns `source` into `mutated` is equivalent (EQUIVALENT, EQUIVALENT_BEFORE)."""
    before, after, following = _change(source, mutated)
    why = EQUIVALENT.get((module, before, after))
    return why or EQUIVALENT_BEFORE.get((module, before, after, following))


def _change(source: str, mutated: str) -> tuple[str, str, str]:
    """The source's lines the mutant changes, what it puts there, and the source's first line after
    them (stripped, blank lines left out)."""
    before, after = source.splitlines(), mutated.splitlines()
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, low, high, new_low, new_high in matcher.get_opcodes():
        if tag != "equal":
            old = " ".join(line.strip() for line in before[low:high] if line.strip())
            new = " ".join(line.strip() for line in after[new_low:new_high] if line.strip())
            following = next((line.strip() for line in before[high:] if line.strip()), "")
            return old, new, following
    return "", "", ""


def _filter(session: Path, module: str) -> None:
    """Mark as skipped the mutants `_left_out` names."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            (mutation,) = item.mutations
            reason = _left_out(Path(mutation.module_path).read_text(), mutation, module)
            if reason:
                db.set_result(item.job_id, WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED))


def _prepare(
    folder: Path,
    module: str,
    timeout: float,
    contexts: Path | None,
    durations_log: Path | None = None,
    suite: float = 0.0,
    tests_only: str | None = None,
) -> tuple[Path, Path]:
    """A fresh copy, config and filtered session for one module."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _fresh_copy(folder)
    if contexts is not None:
        _write_selection(folder, module, contexts, durations_log, suite)
    config = _config(folder, module, timeout, contexts is not None, tests_only)
    session = folder / "session.sqlite"
    _cosmic([str(BIN / "cosmic-ray"), "init", str(config), str(session)], folder)
    _cosmic([str(BIN / "cr-filter-operators"), str(session), str(config)], folder)
    _cosmic([str(BIN / "cr-filter-pragma"), str(session)], folder)
    _filter(session, module)
    return config, session


def _mutant_id(module: str, mutation: Any) -> str:
    line, column = mutation.start_pos
    return f"{module}:{line}:{column} {mutation.operator_name.removeprefix('core/')}#{mutation.occurrence}"


def _outcome(result: Any) -> str:
    output = result.output or ""
    if result.worker_outcome == "skipped":
        return "equivalent" if output.startswith("equivalent") else "filtered"
    if result.test_outcome == "killed":
        return "timeout" if output == "timeout" else "killed"
    return str((result.test_outcome or result.worker_outcome).value)


def _tests_that_ran(output: str) -> str:
    ran = re.findall(r"^(?:PASSED|FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    return "\n".join(ran) or output[-1500:]


def _results(session: Path, module: str) -> tuple[list[Outcome], list[str]]:
    """The outcomes of the mutants run or left out, and the ids of those not run yet."""
    from cosmic_ray.work_db import WorkDB, use_db

    outcomes = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            (mutation,) = item.mutations
            outcome = _outcome(result)
            detail = (result.output or "") if outcome in ("filtered", "equivalent") else ""
            if outcome in ("survived", "killed", "incompetent"):
                detail = _tests_that_ran(result.output or "")
            outcomes.append(
                Outcome(
                    _mutant_id(module, mutation), mutation.operator_name, outcome, result.diff or "", detail
                )
            )
        items = sorted(db.pending_work_items, key=lambda item: tuple(item.mutations[0].start_pos))
        pending = [_mutant_id(module, item.mutations[0]) for item in items]
    return outcomes, pending


def _summary(module: str, outcomes: list[Outcome]) -> tuple[int, int]:
    """Print one module's counts and survivors; (killed, judged)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    judged = killed + counts.get("survived", 0)
    for outcome in outcomes:
        if outcome.outcome in ("survived", "incompetent"):
            print(f"{outcome.outcome.upper()} {outcome.id}\n{outcome.diff}")
            print("  tests that ran:\n    " + outcome.detail.replace("\n", "\n    "))
    rate = 100.0 * killed / judged if judged else 100.0
    print(f"{module}: {json.dumps(counts, sort_keys=True)}; killed {killed} of {judged} ({rate:.1f} %)")
    return killed, judged


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modules", required=True, help="comma-separated modules (keys of MODULES)")
    parser.add_argument("--list", action="store_true", help="init and filter only: count the mutants")
    parser.add_argument("--resume", action="store_true", help="go on with the sessions in --work-dir")
    parser.add_argument(
        "--survivors", action="store_true", help="run again only the survivors of the last run (new tests)"
    )
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="after a --contexts run: run the survivors that ran against selected tests again,"
        " against the module's whole list",
    )
    parser.add_argument(
        "--contexts",
        type=Path,
        help="coverage data with a context per test (-p coverage_contexts): run each mutant against"
        " only the tests that ran its line (scripts/mutation_selected.py); --survivors runs the"
        " survivors again against the whole list",
    )
    parser.add_argument(
        "--suite",
        type=float,
        default=0.0,
        help="with --contexts: a run also takes the tests of other files of the suite that ran the"
        " line, fastest first, up to this many seconds of their time in the contexts run (with"
        " --confirm: every survivor is run again so)",
    )
    parser.add_argument(
        "--durations",
        type=Path,
        help="with --contexts: the contexts run's output with --durations=0 --durations-min=0; a"
        " selected run's time limit is then judged from what its tests took",
    )
    parser.add_argument(
        "--tests",
        help="with --survivors: run them against these test files only (space-separated), e.g. the"
        " tests written for them: the first run already ran every test of the list that runs their line",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--floor", type=float, default=0.0, help="minimum kill rate, percent")
    parser.add_argument("--report", type=Path, help="write every outcome as JSON here")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "apps-api-mutation-tool"
    )
    return parser


def _survivors(session: Path, selected_only: bool = False) -> set[tuple[str, int]]:
    """(operator, occurrence) of the mutants that survived in a session (only those run against
    selected tests, with `selected_only`)."""
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(session), WorkDB.Mode.open) as db:
        return {
            (item.mutations[0].operator_name, item.mutations[0].occurrence)
            for item, result in db.completed_work_items
            if result.test_outcome == "survived"
            and not (selected_only and "mutation_selected: the whole list" in (result.output or ""))
        }


def _keep_only(session: Path, wanted: set[tuple[str, int]]) -> None:
    """Mark as skipped every pending mutant not in `wanted`."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            mutation = item.mutations[0]
            if (mutation.operator_name, mutation.occurrence) not in wanted:
                reason = "filtered: not a survivor of the previous run (--survivors)"
                db.set_result(item.job_id, WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED))


def _run_module(args: argparse.Namespace, module: str) -> tuple[list[Outcome], list[str]]:
    folder = _module_dir(args.work_dir, module)
    config, session = folder / "cosmic-ray.toml", folder / "session.sqlite"
    if args.resume:
        _fresh_copy(folder)
    elif args.survivors or args.confirm:
        # The source must be unchanged since that run: occurrences count positions in it.
        # With --suite every survivor is worth a second run: other files may run its line.
        wanted = _survivors(session, selected_only=args.confirm and not args.suite)
        contexts = args.contexts if args.suite else None
        config, session = _prepare(
            folder, module, args.timeout, contexts, args.durations, args.suite, args.tests
        )
        _keep_only(session, wanted)
    else:
        config, session = _prepare(folder, module, args.timeout, args.contexts, args.durations, args.suite)
    if not args.list:
        _cosmic([str(BIN / "cosmic-ray"), "baseline", str(config)], folder)
        _cosmic([str(BIN / "cosmic-ray"), "exec", str(config), str(session)], folder)
    return _results(session, module)


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    modules = args.modules.split(",")
    if unknown := set(modules) - set(MODULES):
        parser.error(f"unknown modules: {sorted(unknown)}")
    everything: list[Outcome] = []
    killed = judged = 0
    for module in modules:
        outcomes, pending = _run_module(args, module)
        everything += outcomes
        if args.list:
            print("\n".join(pending))
            left_out: dict[str, int] = {}
            for outcome in outcomes:
                reason = outcome.detail.split(":", 1)[-1].strip() or "pragma: no mutate"
                reason = "equivalent" if outcome.outcome == "equivalent" else reason
                left_out[reason] = left_out.get(reason, 0) + 1
            print(f"{module}: {len(pending)} mutants to run; left out: {json.dumps(left_out)}")
            continue
        if pending:
            print(f"{module}: {len(pending)} mutants not run yet (--resume goes on)")
        dead, ran = _summary(module, outcomes)
        killed, judged = killed + dead, judged + ran
    if args.report:
        args.report.write_text(json.dumps([asdict(outcome) for outcome in everything], indent=1))
    if args.list:
        return 0
    rate = 100.0 * killed / judged if judged else 100.0
    print(f"mutation tool: {killed} of {judged} killed ({rate:.1f} %), floor {args.floor:.1f} %")
    return 1 if rate < args.floor else 0


if __name__ == "__main__":
    sys.exit(main())
