# The two quick-start commands: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME := $(CURDIR)/.demo

.PHONY: demo test test-slow lint dev install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python demo/run_demo.py --home $(DEMO_HOME)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# ruff (style, bugs, complexity, docstrings), mypy (types) and import-linter (the layers in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Dagster UI (and daemon) on the demo's instance: lineage, partitions, asset checks, backfills.
dev: $(STAMP)
	mkdir -p $(DEMO_HOME)/dagster
	test -f $(DEMO_HOME)/dagster/dagster.yaml || cp dagster.yaml $(DEMO_HOME)/dagster/dagster.yaml
	EVAL_PLATFORM_HOME=$(DEMO_HOME) DAGSTER_HOME=$(DEMO_HOME)/dagster $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .demo .pytest_cache test-artifacts
