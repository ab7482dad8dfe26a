"""A second problem fits through model.py: its own calendar, a table per target, a few thousand rows.

A default bake gets another problem the way a data scientist would put it in: only the
definitions model.py marks ``Change this`` are replaced (delivery minutes from distance, items,
hour and region, judged on RMSE), stand_in.py makes a few thousand deliveries of the first half
of 2023 with no drift built in, and the bundle's table and date variables point each target at
its own ``${var.catalog}.${var.schema}.deliveries`` and at 2023. The generated suite (which
makes the drift its tests need), ``python -m mlops_local validate`` and the local scenario must
then pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bake import project_env
from problem_swap import (
    FIXTURES,
    SCENARIO_TESTS,
    change_this_names,
    copy_project,
    defined_names,
    model_py,
    replace_definitions,
    run_suite,
    set_variable_defaults,
)

DELIVERIES = '''
SOURCE_TABLE = "main.logistics.deliveries"
SOURCE_COLUMNS = ["ordered_at", "distance_km", "items", "region_id"]
TIMESTAMP = "ordered_at"
LABEL = "delivery_minutes"
HOLDOUT_DAYS = 14

FEATURES = ["distance_km", "items", "order_hour", "region_id"]


def add_features(df: DataFrame) -> DataFrame:
    """Change this: compute ``FEATURES`` next to the source columns, dropping unusable rows."""
    return (
        df.withColumn("distance_km", F.col("distance_km").cast("double"))
        .withColumn("items", F.col("items").cast("int"))
        .withColumn("order_hour", F.hour("ordered_at").cast("int"))
        .withColumn("region_id", F.col("region_id").cast("int"))
        .where(F.col("distance_km").isNotNull() & F.col("delivery_minutes").isNotNull())
    )


THRESHOLDS = {
    "root_mean_squared_error": Threshold(8.0, greater_is_better=False, vs_champion=True),
    "r2_score": Threshold(0.6, greater_is_better=True),
}
'''
TABLE = "${var.catalog}.${var.schema}.deliveries"
VARIABLES = {
    "training_table": TABLE,
    "scoring_table": TABLE,
    "training_end_date": "2023-05-31",
    "score_from_date": "2023-06-01",
}


@pytest.fixture(scope="module")
def second_problem(baked, tmp_path_factory) -> Path:
    project = copy_project(baked(), tmp_path_factory.mktemp("second"))
    replace_definitions(model_py(project), DELIVERIES)
    shutil.copyfile(FIXTURES / "deliveries_stand_in.py", project / "stand_in.py")
    set_variable_defaults(project / "databricks.yml", VARIABLES)
    return project


def test_only_definitions_marked_change_this_are_replaced(baked):
    assert defined_names(DELIVERIES) <= change_this_names(model_py(baked()))


@pytest.mark.slow
def test_validate_passes_for_the_second_problem(second_problem):
    result = subprocess.run(
        [sys.executable, "-m", "mlops_local", "validate"],
        cwd=second_problem,
        env=project_env(second_problem),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_the_generated_suite_passes_for_the_second_problem(second_problem, tmp_path):
    ran = run_suite(second_problem, tmp_path / "report.xml")
    assert set(SCENARIO_TESTS) <= ran, sorted(ran)
    assert ("tests.test_model_lifecycle", "test_train_validate_deploy_on_a_small_sample") in ran
