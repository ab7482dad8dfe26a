# cookiecutter-databricks-mlops: everything runs in one virtual environment, .venv/.
#
#   make demo                  bake the default project into build/ and run its whole pipeline locally
#   make demo PATTERN=hybrid   the same with another deployment pattern (deploy_code, deploy_models, hybrid)
#   make test                  the full test suite (with Go 1.26: the real Databricks CLI tests too)
#   make cli                   build the pinned Databricks CLI and its fake workspace (cached)
#   make bench                 speed figures of the generated project, as ratios to a bare Spark start
#   make fake                  the fake workspace in the foreground: its URL on the first line, jobs run for real

PYTHON ?= python3
VENV ?= .venv
PATTERN ?= deploy_code
# pytest-xdist workers of make test (one per core; 1 runs the suite in this process).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
PY := $(VENV)/bin/python
LINT_PATHS := hooks tests tools clitest local_extensions.py template_rules.py

.PHONY: help venv cli demo test test-fast lint bench clean fake goldens

help:
	@sed -n '3,8p' Makefile

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

# The Databricks CLI pinned in clitest/go.mod and the CLI's fake workspace, built once per
# version into ~/.cache/cookiecutter-databricks-mlops/ (first build: several minutes).
cli: venv
	@if command -v go >/dev/null 2>&1; then $(PY) tools/cli_build.py build; \
	else echo "Go not found: the real Databricks CLI tests will skip (install Go 1.26 to run them)"; fi

# The CLI's fake workspace (clitest/), as the tests run it: job runs execute the deployed wheel
# with this .venv as the runtime. Point a bundle's workspace.host at the URL it prints, use a
# dbapi0<name> (user) or dbapi1<name> (service principal) token; SIGTERM or Ctrl-C stops it and
# removes its state. FAKE_ARGS passes flags (e.g. -requests FILE, -state DIR).
fake: venv
	@$(PY) tools/cli_build.py serve $(FAKE_ARGS)

test: venv cli
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist worksteal --junitxml=$(BUILD)/test-report.xml

# Regenerate the golden request logs of tests/test_request_goldens.py after an intended change.
goldens: venv cli
	GOLDEN_UPDATE=1 $(PY) -m pytest tests/test_request_goldens.py -q

test-fast: venv
	$(PY) -m pytest tests -m "not slow"

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

bench: venv cli
	$(PY) tools/bench.py --build-dir $(BUILD) $(BENCH_ARGS)
	@if command -v go >/dev/null 2>&1; then $(PY) tools/bench_cli.py; fi
	@$(PY) tools/suite_times.py $(BUILD)/test-report.xml

clean:
	rm -rf $(BUILD) .pytest_cache

# make ui [PATTERN=...]: MLflow's UI on the runs and models of the last `make demo` of that pattern.
DEMO_DB = $(firstword $(wildcard $(abspath $(BUILD))/demo-$(PATTERN)/*/.mlops_local/mlflow.db))
.PHONY: ui
ui: venv
	@test -n "$(DEMO_DB)" || { echo "No demo state in $(BUILD)/demo-$(PATTERN): run make demo PATTERN=$(PATTERN) first"; exit 1; }
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(DEMO_DB)
