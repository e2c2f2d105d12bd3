# Everything runs from a virtualenv this Makefile builds itself: `make test` on a fresh clone needs only
# Python 3 and make. AIRFLOW_VERSION picks the Airflow the suite runs against: lowest supported 3.0.6, then 3.1.8 and
# 3.2.2 are tested too (README, "Airflow versions"); the default is the newest.
AIRFLOW_VERSION ?= 3.3.2
# Airflow pins its dependencies with constraint files, which are not on PyPI. For an older release, resolve as
# of its release date instead, so that later releases of its dependencies (structlog, SQLAlchemy) don't break it.
RELEASED_3.0.6 := 2025-09-06T00:00:00Z
RELEASED_3.1.8 := 2026-03-19T00:00:00Z
RELEASED_3.2.0 := 2026-04-15T00:00:00Z
RELEASED_3.2.2 := 2026-06-05T00:00:00Z
EXCLUDE_NEWER ?= $(RELEASED_$(AIRFLOW_VERSION))
# Airflow 3.0 pins SQLAlchemy < 2, which pyiceberg's SQL catalog needs: there the Iceberg sink (and its tests) is off.
ALL_DEV_EXTRAS := dev,iceberg
DEV_EXTRAS_3.0.6 := dev
DEV_EXTRAS ?= $(or $(DEV_EXTRAS_$(AIRFLOW_VERSION)),$(ALL_DEV_EXTRAS))
PYTHON ?= python3
VENV ?= .venv/airflow-$(AIRFLOW_VERSION)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
LINT_PATHS := $(wildcard genviral_provider tests dags benchmarks scripts e2e)

.PHONY: venv lint typecheck unit test bench demo e2e e2e-install sandbox dist clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	# uv resolves Airflow with extras in seconds where pip's resolver can backtrack for many minutes.
	$(BIN)/uv pip install --python $(BIN)/python --quiet $(if $(EXCLUDE_NEWER),--exclude-newer $(EXCLUDE_NEWER)) \
		-e '.[parquet]' 'apache-airflow==$(AIRFLOW_VERSION)'
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[$(DEV_EXTRAS)]' 'apache-airflow==$(AIRFLOW_VERSION)'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: venv
	$(BIN)/python -m benchmarks

sandbox: venv
	$(BIN)/python -m genviral_provider.sandbox --port 8080

# The example DAGs on a real Airflow (scheduler, DAG processor, API server, triggerer) against the sandbox: a backfill
# and a deferred sensor run, a summary, then everything stopped. DEMO_ARGS=--keep-running keeps the UI up.
DEMO_ARGS ?=
demo: venv
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

# The provider as users run it (docs/e2e.md): the wheel in a real Airflow with PostgreSQL, Celery/Redis, S3 (moto), the
# sandbox and the UI in headless Chromium; installs what is missing (apt-get, .venv/e2e), stops all it started.
# E2E_ARGS="--only discovery,local" runs some phases; "--keep-running" leaves the stack up for a look.
E2E_VENV ?= .venv/e2e
E2E_ARGS ?=
e2e-install:
	E2E_VENV=$(E2E_VENV) PYTHON=$(PYTHON) bash e2e/install.sh

e2e: e2e-install
	$(E2E_VENV)/bin/python -m e2e $(E2E_ARGS)

# The distribution as users get it: sdist and wheel in dist/, their metadata checked (twine, scripts/check_dist.py),
# then the wheel installed with apache-airflow==$(AIRFLOW_VERSION) into a clean virtualenv, whose `airflow` must list
# the provider and discover its hook.
DIST_VENV ?= .venv/dist-check
dist: venv
	rm -rf dist $(DIST_VENV)
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/python scripts/check_dist.py archives dist
	$(PYTHON) -m venv $(DIST_VENV)
	$(BIN)/uv pip install --python $(DIST_VENV)/bin/python --quiet $(if $(EXCLUDE_NEWER),--exclude-newer $(EXCLUDE_NEWER)) \
		dist/*.whl 'apache-airflow==$(AIRFLOW_VERSION)'
	$(BIN)/python scripts/check_dist.py installed $(DIST_VENV)

clean:
	rm -rf .venv .demo .e2e .pytest_cache .mypy_cache .ruff_cache dist build
