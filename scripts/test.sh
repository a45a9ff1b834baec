#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run it.
# Extra arguments go to pytest. By default the suite starts embedded PostgreSQL and Redis;
# set APPS_API_TEST_DATABASE_URL / APPS_API_TEST_REDIS_URL to use other servers.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The versions CI tested (requirements.lock, pip-compile of pyproject.toml's test and bench extras),
# then the project itself without resolving again.
.venv/bin/python -m pip install --quiet -r requirements.lock
.venv/bin/python -m pip install --quiet --no-deps -e .

# The install web flow is tested in a real browser: Debian's Chromium, never a downloaded one.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing; install Debian's 'chromium' package for the browser tests" >&2
  fi
fi

# The connection pooler tests start Debian's PgBouncer (transaction pooling mode).
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Debian's pgbouncer for the connection pooler tests..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  else
    echo "warning: pgbouncer is missing; install Debian's 'pgbouncer' package for the pooler tests" >&2
  fi
fi

# Two test processes (pytest-xdist), each with its own database, queue and Redis, whole files
# to each (a module's fixtures start once); PYTEST_WORKERS=0 runs in this one process instead.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
