"""model.py is the one module to change for another ML problem: a classifier on another table.

A bake with every optional job (monitoring, serving endpoint) gets
tests/fixtures/classifier_model.py as its model.py (urgent orders of
``samples.tpch.orders``, a HistGradientBoostingClassifier judged on accuracy and F1, with ROC
AUC on probabilities), tests/fixtures/classifier_stand_in.py as its stand_in.py (TPC-H's own
calendar, no drift built in), and the bundle's table and date variables pointed at that table
and calendar; nothing else changes. The project's own test suite, the local scenario included,
must then pass as it does for the default problem, and no other module (job package or local
runner) may still name the default one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from problem_swap import FIXTURES, SCENARIO_TESTS, copy_project, model_py, run_suite, set_variable_defaults

TABLE = "samples.tpch.orders"
# How the default problem shows through: its columns, table, estimator and metric.
DEFAULT_PROBLEM = re.compile(r"fare_amount|tpep_|nyctaxi|Regressor|rmse", re.IGNORECASE)


@pytest.fixture(scope="module")
def classifier_project(baked, tmp_path_factory) -> Path:
    project = copy_project(baked(include_monitoring=True, include_serving_endpoint=True), tmp_path_factory.mktemp("c"))
    shutil.copyfile(FIXTURES / "classifier_model.py", model_py(project))
    shutil.copyfile(FIXTURES / "classifier_stand_in.py", project / "stand_in.py")
    set_variable_defaults(
        project / "databricks.yml",
        {
            "training_table": TABLE,
            "scoring_table": TABLE,
            "training_end_date": "1998-06-30",
            "score_from_date": "1998-07-01",
        },
    )
    return project


def test_only_model_py_knows_the_problem(classifier_project):
    src = classifier_project / "src"
    problem = model_py(classifier_project)
    mentions = [
        path.relative_to(src).as_posix()
        for path in sorted(src.rglob("*.py"))
        if path != problem and DEFAULT_PROBLEM.search(path.read_text())
    ]
    assert mentions == []
    assert TABLE in (classifier_project / "databricks.yml").read_text()


@pytest.mark.slow
def test_the_generated_suite_passes_for_a_classifier(classifier_project, tmp_path):
    ran = run_suite(classifier_project, tmp_path / "report.xml")
    assert set(SCENARIO_TESTS) <= ran, sorted(ran)
