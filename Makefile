# meshop: `make test` and `make demo` do all set-up themselves (see scripts/setup.sh).
PY := .venv/bin/python
# make test runs the tests in parallel workers (pytest-xdist): most of a test's time is spent waiting on
# real processes (Consul, Docker, Caddy), so more workers than the 2 cores pay off; tests that share one resource run
# on one worker (tests/support/groups.py). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 4
.DEFAULT_GOAL := help

.PHONY: help setup test test-install unit lint demo demo-down down fleet fleet-down

help:
	@echo "make test       set up (idempotent) and run lint, layer contracts and every test"
	@echo "make test-install  docs/install.md end to end on three Debian 12 systemd hosts (root; ~3 min build once)"
	@echo "make demo       set up and run meshop on this machine with the example apps"
	@echo "make demo-down  stop exactly what the demo started"
	@echo "make down       stop the Docker engine that setup started (if it started one)"
	@echo "make fleet      a real fleet on this machine: 3 nodes + gateway in network namespaces (root)"
	@echo "make fleet-down stop exactly what make fleet started and remove its namespaces"

setup:
	@bash scripts/setup.sh

lint: setup
	$(PY) -m ruff check meshop tests benchmarks
	.venv/bin/lint-imports

test: lint
	$(PY) -m pytest -n $(TEST_WORKERS)

test-install: setup
	@bash -o pipefail -c 'bash scripts/build-wheels.sh 2>&1 >/dev/null | { grep -v " is ignored: it is neither" >&2 || true; }'
	MESHOP_INSTALL_E2E=1 $(PY) -m pytest -s tests/install

unit: setup
	$(PY) -m pytest tests/unit

demo: setup
	@bash scripts/demo.sh up

demo-down:
	@bash scripts/demo.sh down

down:
	@bash scripts/down.sh

fleet: setup
	@$(PY) -m tests.support.fleet up

fleet-down:
	@$(PY) -m tests.support.fleet down
