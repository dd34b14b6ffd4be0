# kyphofollow: `make run` starts the whole service with no server installed; `make test` runs the
# suite against real PostgreSQL and Redis.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/kyphofollow
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint bench services clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kyphofollow needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: export SITE_URL ?= http://127.0.0.1:$(PORT)
run: $(VENV)/.installed
	mkdir -p var/mail var/broker
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo
	@echo "  kyphofollow is starting: web, Celery worker and Celery beat (Ctrl-C stops all three)."
	@echo "  Admin:   http://127.0.0.1:$(PORT)/admin/   login: coordinator / kyphofollow-demo"
	@echo "  Health:  http://127.0.0.1:$(PORT)/health/"
	@echo "  E-mail:  one file per message in $(CURDIR)/var/mail/"
	@echo "  Try a patient check-in: $(BIN)/python manage.py demo_checkin_link   (prints a link to open)"
	@echo "  Simulate a month of sweeps: $(BIN)/python manage.py demo_clock --days 30"
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" exec $(BIN)/honcho start --port $(PORT) --procfile Procfile

services:
	bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh

test: $(VENV)/.installed-dev services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.installed-dev services
	mkdir -p artifacts
	set -o pipefail; for script in bench/*.py; do \
		DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python $$script || exit 1; \
	done | tee artifacts/bench.txt

clean:
	rm -rf $(VENV) var
