# The only way to install, test, lint, bench and run the demo. CI calls `make test` and nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := docker/constraints.txt
# Debian packages the suite drives for real (binary:package). A binary off PATH counts as installed when a
# versioned Debian dir holds it: postgresql puts initdb and pg_ctl in /usr/lib/postgresql/<version>/bin.
SYSTEM_DEPS := ffmpeg:ffmpeg ffprobe:ffmpeg prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
  amtool:prometheus-alertmanager chromium:chromium node:nodejs npm:npm faketime:faketime \
  initdb:postgresql pg_ctl:postgresql systemd-analyze:systemd
VERSIONED_BIN_DIRS := /usr/lib/postgresql/*/bin
# Grafana's published dashboard schema + tsc, for tests/test_dashboards.py (no Grafana server installs here).
SCHEMA_DIR := tools/grafana-schema
SCHEMA_STAMP := $(SCHEMA_DIR)/node_modules/.installed

.PHONY: test lint unit test-stress demo serve bench system-deps install grafana-schema constraints clean

test: install system-deps grafana-schema lint unit

# The venv holds exactly the versions in docker/constraints.txt: a release upstream (a new httpx, uvicorn or
# ruff) cannot change what `make test` runs between two runs of one commit. `make constraints` moves them.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(SCHEMA_STAMP): $(SCHEMA_DIR)/package.json $(SCHEMA_DIR)/package-lock.json | system-deps
	cd $(SCHEMA_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(SCHEMA_STAMP)

grafana-schema: $(SCHEMA_STAMP)

# Upgrade the venv to the newest releases pyproject.toml allows, then pin them: the venv, the image and CI
# all install these versions. Run the whole suite on the result before committing the file.
constraints: install
	$(BIN)/pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(BIN)/python docker/freeze_constraints.py > $(CONSTRAINTS)
	touch $(STAMP)

system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  bin=$${dep%%:*}; pkg=$${dep##*:}; \
	  command -v $$bin >/dev/null 2>&1 || ls $(VERSIONED_BIN_DIRS:%=%/$$bin) >/dev/null 2>&1 \
	    || missing="$$missing $$pkg"; \
	done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$$(echo $$missing | tr -d ' ')" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing Debian packages:$$missing (run: sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

lint: install
	$(BIN)/ruff check aura_monitor tests bench
	$(BIN)/ruff format --check aura_monitor tests bench
	$(BIN)/mypy

unit: install system-deps grafana-schema
	$(BIN)/pytest -q

# Not part of `test`: the whole suite STRESS_RUNS times beside STRESS_LOAD busy loops, to catch flaky tests.
STRESS_RUNS ?= 5
STRESS_LOAD ?= 2
test-stress: install system-deps grafana-schema
	STRESS_RUNS=$(STRESS_RUNS) STRESS_LOAD=$(STRESS_LOAD) PYTEST=$(BIN)/pytest tests/stress.sh

demo: install system-deps
	$(BIN)/aura-monitor demo

bench: install system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(SCHEMA_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
