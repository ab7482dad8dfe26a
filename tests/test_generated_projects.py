"""The generated projects' own test suites, and a local end-to-end run (slow: minutes).

Each suite runs in a subprocess with this environment's interpreter, so every pattern
shares the one virtual environment; inside a suite, one Spark session serves all tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from bake import project_env

PATTERNS = ["deploy_code", "deploy_models", "hybrid"]


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_generated_test_suite_passes(baked, pattern):
    """With serving on, so each pattern's own scenario test also serves and smoke-tests its champion."""
    project = baked(deployment_pattern=pattern, include_serving_endpoint=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    print(f"{pattern}: {summary}")


@pytest.mark.slow
def test_local_scenario_from_the_command_line(baked):
    """What `make demo` runs: validate every target, then the whole pipeline."""
    project = baked()
    package = project.name
    env = project_env(project)
    validate = subprocess.run(
        [sys.executable, "-m", f"{package}.local", "validate"], cwd=project, env=env, capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "Bundle OK" in validate.stdout
    scenario = subprocess.run(
        [sys.executable, "-m", f"{package}.local", "scenario"], cwd=project, env=env, capture_output=True, text=True
    )
    assert scenario.returncode == 0, scenario.stdout[-5000:] + scenario.stderr[-3000:]
    out = scenario.stdout
    for target in ("dev", "staging", "prod"):
        assert f"=== model_training_job [{target}] succeeded" in out
    assert "=== batch_inference_job [prod] succeeded" in out
    assert re.search(r"prod\s+prod\.\S+ v\d+: trained in prod", out), out[-2000:]
    assert (project / ".mlops_local" / "mlflow.db").is_file()


@pytest.mark.skipif(shutil.which("databricks") is None, reason="the Databricks CLI is not installed on this machine")
@pytest.mark.parametrize("pattern", PATTERNS)
def test_databricks_bundle_validate(baked, pattern):
    """Needs the CLI and a workspace profile: `databricks bundle validate` resolves against a live workspace."""
    project = baked(deployment_pattern=pattern)
    for target in ("dev", "test", "staging", "prod"):
        result = subprocess.run(
            ["databricks", "bundle", "validate", "-t", target], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
