import datetime as dt

import pytest
from helpers import bundle_date, drifted_table, model_args
from mlops_local import environment
from pyspark.sql import functions as F

from my_mlops_project import batch_inference, model, monitoring
from my_mlops_project.runtime import JobError, read_table, write_table


@pytest.mark.slow
def test_population_stability_is_near_zero_without_drift_and_large_with_it(spark):
    def sample(seed):
        return spark.range(8_000).select(F.randn(seed).alias("x"), F.floor(F.rand(seed + 1) * 7).alias("day"))

    reference, same = sample(1), sample(3)
    shifted = same.withColumn("x", F.col("x") + 1)
    psi = monitoring.population_stability(reference, same, ["x", "day"])
    assert psi["x"] < 0.05 and psi["day"] < 0.05
    assert monitoring.population_stability(reference, shifted, ["x"])["x"] > 0.5


@pytest.fixture
def task_values(monkeypatch):
    values = {}
    monkeypatch.setattr(environment, "task_value_sink", values.__setitem__)
    return values


def source_rows(spark):
    return read_table(spark, model.SOURCE_TABLE)


def last_day(spark, table: str) -> str:
    return str(read_table(spark, table).agg(F.max(F.to_date(model.TIMESTAMP))).first()[0])


def test_monitor_finds_drift_writes_metrics_and_asks_for_retraining(spark, champion, task_values):
    model_ref, version = champion
    table = drifted_table(spark, "unit.ml.drifted_rows")
    score_from = bundle_date("score_from_date")
    batch_inference.main([*model_args(model_ref), f"--input_table={table}", f"--score_from_date={score_from}"])
    args = [*model_args(model_ref), f"--training_end_date={bundle_date('training_end_date')}"]
    assert monitoring.main(args) is True
    assert task_values == {"retrain": "true", "window_end": last_day(spark, table)}
    metrics = read_table(spark, model_ref.monitoring_table)
    psi = {r["column"]: r["value"] for r in metrics.where("metric = 'psi'").collect()}
    assert set(psi) == {*model.FEATURES, "prediction"}
    assert max(psi[feature] for feature in model.FEATURES) > 0.2
    for name in (model.MONITORED_ERROR, f"reference_{model.MONITORED_ERROR}"):
        assert metrics.where(F.col("metric") == name).count() == 1


def test_monitor_without_drift_does_not_retrain(spark, champion, task_values):
    """Predictions for days the model was trained on (before the hold-out days): the reference
    distribution and the reference error, so no drift."""
    model_ref, _ = champion
    end = bundle_date("training_end_date")
    trained_to = end - dt.timedelta(days=model.HOLDOUT_DAYS)
    steady = "unit.ml.rows_without_drift"
    write_table(source_rows(spark).where(F.to_date(model.TIMESTAMP) <= F.lit(trained_to)), steady, mode="overwrite")
    start = trained_to - dt.timedelta(days=2 * model.HOLDOUT_DAYS)
    batch_inference.main([*model_args(model_ref), f"--input_table={steady}", f"--score_from_date={start}"])
    assert monitoring.main([*model_args(model_ref), f"--training_end_date={end}"]) is False
    assert task_values == {"retrain": "false", "window_end": last_day(spark, steady)}


def test_monitor_needs_the_inference_table(champion):
    model_ref, _ = champion
    with pytest.raises(JobError, match="_predictions does not exist"):
        monitoring.main([*model_args(model_ref), f"--training_end_date={bundle_date('training_end_date')}"])
