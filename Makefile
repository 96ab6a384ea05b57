# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Upstream CRD schemas (KEDA, prometheus-operator) for validating custom resources; not vendored here.
export LLMPLAT_CRD_DIR ?= $(firstword $(wildcard $(CURDIR)/../shared/crds))

.PHONY: demo test lint render venv dev clean

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/llmplat manifests validate
	$(BIN)/dg check defs
	$(BIN)/llmplat demo

test: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The Dagster UI (webserver + daemon) on the local instance: http://127.0.0.1:3000
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev

render: $(STAMP)
	$(BIN)/llmplat manifests render

venv: $(STAMP)

# uv resolves and installs the pinned set in seconds; plain pip can take many minutes on it.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache
