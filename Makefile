# The dev loop's commands. Each is one line of what CONTRIBUTING.md describes; `make help` lists them.
# Tests use the embedded PostgreSQL and Redis unless APPS_API_TEST_DATABASE_URL /
# APPS_API_TEST_REDIS_URL point at servers of your own (faster: no start-up).
PY := .venv/bin/python
PATHS := src tests migrations scripts bench examples

.PHONY: help setup run test test-fast lint format types bench probe sample snapshot ci

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup:  ## create .venv and install the locked dependencies, the project and the test tools
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .

run:  ## the service with embedded PostgreSQL, Redis and worker
	.venv/bin/apps-api serve

test:  ## the whole suite (the README's command)
	bash scripts/test.sh

test-fast:  ## everything but the tests marked slow (browsers, process fleets, soak-like runs)
	bash scripts/test.sh -m "not slow"

lint:  ## ruff check and format check
	.venv/bin/ruff check $(PATHS)
	.venv/bin/ruff format --check $(PATHS)

format:  ## ruff fix and format
	.venv/bin/ruff check --fix $(PATHS)
	.venv/bin/ruff format $(PATHS)

types:  ## mypy --strict over src, bench and scripts (the config is in pyproject.toml)
	.venv/bin/mypy

bench:  ## the benchmark; writes bench/RESULTS.md
	$(PY) -m bench

probe:  ## the mutation probe: every planted bug must be caught
	$(PY) -u scripts/mutation_probe.py

sample:  ## a random sample of generated mutants (seed printed)
	$(PY) -u scripts/mutation_sample.py --modules "$$(grep -oP '^MUTATION_MODULES=\K.*' .ci/run)" --budget 780 --floor 95

snapshot:  ## regenerate openapi.snapshot.json after an intended API change
	$(PY) scripts/update_openapi_snapshot.py

ci:  ## what CI runs, all of it (about 45 minutes)
	bash .ci/run
