"""The quality monitor on the inference table: created once the table exists, updated, refreshed.

The workspace is ``mlops_local.workspace``'s HTTP server and a real ``WorkspaceClient``
(the ``workspace`` fixture of conftest.py); local runs keep the monitor in their own stand-in.
"""

import pytest
from helpers import bundle_date, model_args
from mlops_local.workspace import StandIn

from my_mlops_project import batch_inference, model, quality_monitor
from my_mlops_project.names import ModelRef
from my_mlops_project.runtime import JobError, local_dir, read_table, write_table

MODEL = ModelRef("prod", "ml", "model")
MONITORS = "/api/data-quality/v1/monitors"


def ensure(w, schedule: str | None = "0 0 9 * * ?") -> tuple[str, str]:
    return quality_monitor.ensure_monitor(w, MODEL, "/Workspace/Shared/.bundle/x/prod/quality_monitor", schedule)


def test_no_monitor_before_the_inference_table_exists(workspace):
    w, stand_in = workspace
    with pytest.raises(JobError, match="prod.ml.model_predictions does not exist yet"):
        ensure(w)
    assert stand_in.writes() == []


def test_created_then_unchanged_then_updated_when_paused(workspace):
    w, stand_in = workspace
    stand_in.tables["prod.ml.model_predictions"] = "t-1"
    stand_in.schemas["prod.ml"] = "s-1"
    assert ensure(w) == (quality_monitor.CREATED, "t-1")
    create = next(c for c in stand_in.calls if c.method == "POST")
    assert create.path == MONITORS
    config = create.body["data_profiling_config"]
    assert create.body["object_type"] == "table" and create.body["object_id"] == "t-1"
    assert config["output_schema_id"] == "s-1"
    assert config["inference_log"] == {
        "problem_type": f"INFERENCE_PROBLEM_TYPE_{model.PROBLEM_TYPE.upper()}",
        "timestamp_column": "scored_at",
        "granularities": ["AGGREGATION_GRANULARITY_1_DAY"],
        "prediction_column": "prediction",
        "model_id_column": "model_version",
        "label_column": model.LABEL,
    }
    assert config["schedule"] == {"quartz_cron_expression": "0 0 9 * * ?", "timezone_id": "UTC"}

    stand_in.calls.clear()
    assert ensure(w)[0] == quality_monitor.UNCHANGED
    assert stand_in.writes() == []

    assert ensure(w, schedule=None)[0] == quality_monitor.UPDATED
    patch = next(c for c in stand_in.calls if c.method == "PATCH")
    assert patch.path == f"{MONITORS}/table/t-1"
    assert patch.query == {"update_mask": ["data_profiling_config.schedule"]}
    assert "schedule" not in patch.body["data_profiling_config"]


def test_refresh_is_requested_unless_one_is_running(workspace):
    w, stand_in = workspace
    assert quality_monitor.request_refresh(w, "t-1") == 7
    assert stand_in.calls[-1].path == f"{MONITORS}/table/t-1/refreshes"
    stand_in.refresh_running = True
    assert quality_monitor.request_refresh(w, "t-1") is None


def test_locally_the_monitor_is_kept_by_the_stand_in_workspace(spark, fresh_model):
    args = [*model_args(fresh_model), "--assets_dir=/Workspace/x"]
    with pytest.raises(JobError, match="run the batch inference job first"):
        quality_monitor.main(args)
    rows = spark.createDataFrame([(1.0,)], "prediction double")
    write_table(rows, fresh_model.predictions_table, mode="overwrite")
    assert quality_monitor.main(args) == quality_monitor.CREATED
    assert quality_monitor.main(args) == quality_monitor.UNCHANGED
    assert quality_monitor.main([*args, "--pause_status=PAUSED"]) == quality_monitor.UPDATED
    kept = StandIn.open(local_dir())  # what a later process sees
    (monitor,) = [m for m in kept.monitors.values() if m["object_id"] == kept.table_id(fresh_model.predictions_table)]
    assert "schedule" not in monitor["data_profiling_config"]
    assert quality_monitor.remove(model_args(fresh_model)) is True
    assert StandIn.open(local_dir()).monitors == {}


def test_the_inference_table_has_the_columns_the_monitor_reads(spark, champion):
    model_ref, _ = champion
    batch_inference.main([*model_args(model_ref), f"--score_from_date={bundle_date('score_from_date')}"])
    columns = read_table(spark, model_ref.predictions_table).columns
    log = quality_monitor.inference_log()
    for column in (log.timestamp_column, log.prediction_column, log.model_id_column, log.label_column):
        assert column in columns
