"""model.py is the one module to change for another ML problem: a classifier on another table.

A bake with every optional job (monitoring, serving endpoint) gets
tests/fixtures/classifier_model.py as its model.py (urgent orders of
``samples.tpch.orders``, a HistGradientBoostingClassifier judged on accuracy and F1) and
the bundle's table variables pointed at that table; nothing else changes. The project's
own test suite, the local scenario included, must then pass as it does for the default
problem, and no other module (job package or local runner) may still name the default one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from bake import project_env

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "classifier_model.py"
TABLE = "samples.tpch.orders"
# How the default problem shows through: its columns, table, estimator and metric.
DEFAULT_PROBLEM = re.compile(r"fare_amount|tpep_|nyctaxi|Regressor|rmse", re.IGNORECASE)


def point_table_variables_at(databricks_yml: Path, table: str) -> None:
    """Set the defaults of the bundle's training_table and scoring_table variables to ``table``."""
    text = databricks_yml.read_text()
    for variable in ("training_table", "scoring_table"):
        text, count = re.subn(rf"(\n  {variable}:\n(?:    .*\n)*?    default: ).*\n", rf"\g<1>{table}\n", text)
        assert count == 1, f"no default for the {variable} variable in {databricks_yml}"
    databricks_yml.write_text(text)


@pytest.fixture(scope="module")
def classifier_project(baked, tmp_path_factory) -> Path:
    default = baked(include_monitoring=True, include_serving_endpoint=True)
    project = shutil.copytree(default, tmp_path_factory.mktemp("classifier") / default.name)
    shutil.copyfile(FIXTURE, next(project.glob("src/*/model.py")))
    point_table_variables_at(project / "databricks.yml", TABLE)
    return project


def test_only_model_py_knows_the_problem(classifier_project):
    src = classifier_project / "src"
    problem = next(src.glob("*/model.py"))
    mentions = [
        path.relative_to(src).as_posix()
        for path in sorted(src.rglob("*.py"))
        if path != problem and DEFAULT_PROBLEM.search(path.read_text())
    ]
    assert mentions == []
    assert TABLE in (classifier_project / "databricks.yml").read_text()


@pytest.mark.slow
def test_the_generated_suite_passes_for_a_classifier(classifier_project, tmp_path):
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=classifier_project,
        env=project_env(classifier_project),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    ran = {(case.get("classname"), case.get("name")) for case in cases if not list(case)}  # passed: no children
    assert ("tests.test_scenario", "test_scenario_gives_prod_a_champion_with_lineage") in ran, sorted(ran)
    assert ("tests.test_scenario", "test_a_retrain_after_drift_learns_from_the_drifted_window") in ran
