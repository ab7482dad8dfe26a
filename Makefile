# cookiecutter-databricks-mlops: everything runs in one virtual environment, .venv/.
#
#   make demo                  bake the default project into build/ and run its whole pipeline locally
#   make demo PATTERN=hybrid   the same with another deployment pattern (deploy_code, deploy_models, hybrid)
#   make test                  the full test suite
#   make bench                 speed figures of the generated project, as ratios to a bare Spark start

PYTHON ?= python3
VENV ?= .venv
PATTERN ?= deploy_code
BUILD ?= build
PY := $(VENV)/bin/python
LINT_PATHS := hooks tests tools local_extensions.py

.PHONY: help venv demo test test-fast lint bench clean

help:
	@sed -n '3,6p' Makefile

$(VENV)/.installed: pyproject.toml
	@echo "Creating $(VENV) and installing the pinned tools (first run: a few minutes)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off --upgrade "pip>=25.1"
	$(PY) tools/quiet.py --log $(VENV)/install.log -- $(PY) -m pip install --progress-bar off --group dev
	$(PY) -c "import cookiecutter, pyspark, mlflow, databricks.bundles"
	@touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) tools/demo.py --pattern $(PATTERN) --build-dir $(BUILD)

test: venv
	$(PY) -m pytest tests

test-fast: venv
	$(PY) -m pytest tests -m "not slow"

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

bench: venv
	$(PY) tools/bench.py --build-dir $(BUILD) $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) .pytest_cache

# make ui [PATTERN=...]: MLflow's UI on the runs and models of the last `make demo` of that pattern.
DEMO_DB = $(firstword $(wildcard $(abspath $(BUILD))/demo-$(PATTERN)/*/.mlops_local/mlflow.db))
.PHONY: ui
ui: venv
	@test -n "$(DEMO_DB)" || { echo "No demo state in $(BUILD)/demo-$(PATTERN): run make demo PATTERN=$(PATTERN) first"; exit 1; }
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(DEMO_DB)
