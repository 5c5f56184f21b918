# Orchestrion. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# uv is run as a module of the system Python, installed there if missing.
UV := python3 -m uv
STAMP := $(VENV)/.installed
REQS := requirements/dev.txt
# Test processes (pytest-xdist): the suite mostly waits on servers and sockets, so more
# workers than cores pays off.
TEST_WORKERS ?= 3

.PHONY: help install browser promtool up test test-long test-fast lint fmt lock clean mcp-peer sdk

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): $(REQS) pyproject.toml
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@test -x $(PY) || $(UV) venv --quiet --python python3 $(VENV)
	$(UV) pip sync --quiet --python $(PY) --require-hashes --compile-bytecode $(REQS)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

# Bytecode is compiled ahead and cached: where PYTHONDONTWRITEBYTECODE is set nothing is
# cached on import, and every process (each server a test starts) would compile its
# imports again.
unexport PYTHONDONTWRITEBYTECODE
install: $(STAMP) ## Install everything into .venv (hash-checked pins)
	@$(PY) -m compileall -q -j 0 src >/dev/null

# The console's browser tests drive Debian's chromium (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

browser: $(CHROMIUM) ## Install chromium for the browser tests (apt-get)

# The monitoring tests check deploy/prometheus with promtool, from Debian's prometheus.
PROMTOOL ?= /usr/bin/promtool

$(PROMTOOL):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus

promtool: $(PROMTOOL) ## Install promtool for the monitoring tests (apt-get)

up: install ## Start the whole platform on :8000 (SQLite, in-process bus)
	$(VENV)/bin/orchestrion up

test: install browser promtool ## Run the test suite (SQLite and the local PostgreSQL)
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=20

# The nightly run: what `make test` runs, with the chaos tests' crash loops four times as long.
test-long: install browser promtool ## Run the test suite with long chaos loops (nightly)
	ORCHESTRION_CHAOS_ROUNDS=12 $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=20

test-fast: install ## Run the tests on SQLite only
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not postgres and not kafka"

lint: install ## ruff, ruff format --check, mypy
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

fmt: install ## Format and fix what ruff can
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

lock: ## Re-pin dependencies with hashes after editing pyproject.toml
	$(UV) pip compile --quiet pyproject.toml --extra dev --generate-hashes --python-version 3.11 --override requirements/overrides.txt -o $(REQS)
	$(UV) pip compile --quiet pyproject.toml --generate-hashes --python-version 3.11 --override requirements/overrides.txt -o requirements/main.txt

sdk: install ## Regenerate the TypeScript SDK's types from /openapi.json and build it (needs npm)
	PYTHON=$(PY) clients/typescript/scripts/regenerate.sh

mcp-peer: install ## Install the reference MCP server the tests talk to (into .peers/, needs npm)
	$(PY) -c "from tests.fixtures.mcp_peer import install_everything; install_everything()"

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) .peers .orchestrion .pytest_cache .mypy_cache .ruff_cache
