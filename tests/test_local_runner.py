"""The local runner (src/mlops_local) and the pattern layout, tested here rather than in every project.

``runner/test_local_runner.py`` needs a project's fixtures (Spark, the local state), so it
runs inside a baked project, from a copy that the project never keeps. The layout table
checks, for every pattern, which targets define the training and the promotion job: a
generated project only knows its own pattern.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bake import project_env

RUNNER_TESTS = Path(__file__).resolve().parent / "runner" / "test_local_runner.py"
TARGETS = ("dev", "test", "staging", "prod")
LAYOUT = {
    "deploy_code": {"model_training_job": TARGETS, "model_promotion_job": ()},
    "deploy_models": {"model_training_job": ("dev",), "model_promotion_job": ("staging", "prod")},
    "hybrid": {"model_training_job": ("dev", "test", "staging"), "model_promotion_job": ("prod",)},
}


def test_the_runner_follows_the_job_definitions(baked, tmp_path):
    project = shutil.copytree(baked(), tmp_path / "project")
    shutil.copy(RUNNER_TESTS, project / "tests" / RUNNER_TESTS.name)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/{RUNNER_TESTS.name}"],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize("pattern", sorted(LAYOUT))
def test_each_pattern_defines_training_and_promotion_where_the_table_says(baked, pattern, monkeypatch):
    project = baked(deployment_pattern=pattern)
    monkeypatch.syspath_prepend(str(project / "src"))
    from mlops_local.bundle import load_bundle, resolve

    config = load_bundle(project)
    bundles = {target: resolve(config, target, user="alice@example.com") for target in TARGETS}
    for job, expected in LAYOUT[pattern].items():
        assert tuple(t for t in TARGETS if job in bundles[t].jobs) == expected, job
