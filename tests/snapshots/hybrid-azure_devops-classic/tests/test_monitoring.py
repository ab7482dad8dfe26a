import pytest
from helpers import model_args
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


def test_monitor_finds_the_drift_writes_metrics_and_asks_for_retraining(spark, champion, task_values):
    model_ref, version = champion
    batch_inference.main([*model_args(model_ref), "--score_from_date=2016-02-15"])
    args = [*model_args(model_ref), "--training_end_date=2016-02-14"]
    assert monitoring.main(args) is True
    assert task_values == {"retrain": "true", "window_end": "2016-02-29"}
    metrics = read_table(spark, model_ref.monitoring_table)
    psi = {r["column"]: r["value"] for r in metrics.where("metric = 'psi'").collect()}
    assert set(psi) == {*model.FEATURES, "prediction"}
    assert max(psi[feature] for feature in model.FEATURES) > 0.2
    for name in (model.MONITORED_ERROR, f"reference_{model.MONITORED_ERROR}"):
        assert metrics.where(F.col("metric") == name).count() == 1


def test_monitor_without_drift_does_not_retrain(spark, champion, task_values):
    """Predictions for days the model was trained on: the same distribution as the reference, no drift."""
    model_ref, _ = champion
    steady = "unit.ml.rows_without_drift"
    source = read_table(spark, model.SOURCE_TABLE)
    write_table(source.where(F.to_date(model.TIMESTAMP) <= F.lit("2016-01-31")), steady, mode="overwrite")
    batch_inference.main([*model_args(model_ref), f"--input_table={steady}", "--score_from_date=2016-01-18"])
    assert monitoring.main([*model_args(model_ref), "--training_end_date=2016-02-14"]) is False
    assert task_values == {"retrain": "false", "window_end": "2016-01-31"}


def test_monitor_needs_the_inference_table(champion):
    model_ref, _ = champion
    with pytest.raises(JobError, match="_predictions does not exist"):
        monitoring.main([*model_args(model_ref), "--training_end_date=2016-02-14"])


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("deploy_models", "model_training_job -t dev"), ("hybrid", "model_training_job -t staging")],
)
def test_retraining_needed_says_which_job_to_run_where(pattern, expected):
    with pytest.raises(JobError, match=expected):
        monitoring.retraining_needed(["--model_name=m", "--target=prod", f"--pattern={pattern}"])
