import pytest
from helpers import model_args
from pyspark.sql import functions as F

from my_mlops_project import batch_inference, monitoring, runtime
from my_mlops_project.data import generate_trips
from my_mlops_project.runtime import JobError, read_table, write_table


@pytest.mark.slow
def test_population_stability_is_near_zero_without_drift_and_large_with_it(spark):
    reference = generate_trips(spark, rows=8_000, seed=1, drift_start=None)
    same = generate_trips(spark, rows=8_000, seed=2, drift_start=None)
    shifted = same.withColumn("trip_distance", F.col("trip_distance") * 2)
    psi = monitoring.population_stability(reference, same, ["trip_distance", "fare_amount"])
    assert psi["trip_distance"] < 0.05 and psi["fare_amount"] < 0.05
    assert monitoring.population_stability(reference, shifted, ["trip_distance"])["trip_distance"] > 0.5


@pytest.fixture
def task_values(monkeypatch):
    values = {}
    monkeypatch.setattr(runtime, "task_value_sink", values.__setitem__)
    return values


def test_monitor_finds_the_drift_writes_metrics_and_asks_for_retraining(spark, champion, task_values):
    model_ref, version = champion
    batch_inference.main([*model_args(model_ref), "--score_from_date=2016-02-15"])
    args = [*model_args(model_ref), "--training_end_date=2016-02-14"]
    assert monitoring.main(args) is True
    assert task_values == {"retrain": "true", "window_end": "2016-02-29"}
    metrics = read_table(spark, model_ref.monitoring_table)
    psi = {r["column"]: r["value"] for r in metrics.where("metric = 'psi'").collect()}
    assert psi["trip_distance"] > 0.2 and psi["pickup_weekday"] < 0.2
    assert metrics.where("metric = 'rmse'").count() == 1


def test_monitor_without_drift_does_not_retrain(spark, champion, task_values):
    model_ref, _ = champion
    steady = "unit.ml.trips_without_drift"
    write_table(generate_trips(spark, rows=6_000, seed=3, drift_start=None), steady, mode="overwrite")
    batch_inference.main([*model_args(model_ref), f"--input_table={steady}", "--score_from_date=2016-02-15"])
    assert monitoring.main([*model_args(model_ref), "--training_end_date=2016-02-14"]) is False
    assert task_values["retrain"] == "false"


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
