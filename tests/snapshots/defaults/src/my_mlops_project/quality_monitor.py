"""Quality monitor: a Databricks data profiling monitor on the inference table, kept current.

The ``quality_monitor`` task runs after each batch inference run. It creates the monitor
(inference-log analysis of ``model.PROBLEM_TYPE``) on ``<catalog>.<schema>.<model>_predictions``,
or else updates what differs and asks for a refresh, so the metrics follow every scoring run.

A paused schedule means no schedule: monitors cannot be paused, which is also what the
Databricks CLI does to a bundle monitor in a paused target (``ApplyPresets`` drops its
schedule). The bundle passes ``PAUSED`` in dev and test.

The monitor is not a bundle resource (it cannot be declared before its table exists), so
``databricks bundle destroy`` leaves it; ``remove_quality_monitor`` deletes it. The API is
``WorkspaceClient.data_quality`` (``/api/data-quality/v1/monitors``): the older
``quality_monitors`` API is deprecated in favour of it. Locally the stand-in workspace
(``runtime.workspace_client``) keeps the monitor.
"""

from __future__ import annotations

from databricks.sdk.errors import NotFound, ResourceConflict
from databricks.sdk.service.dataquality import (
    AggregationGranularity,
    CronSchedule,
    DataProfilingConfig,
    InferenceLogConfig,
    InferenceProblemType,
    Monitor,
    Refresh,
)

from . import params
from .model import LABEL, PROBLEM_TYPE
from .names import ModelRef
from .runtime import JobError, workspace_client

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
TABLE = "table"
MANAGED_FIELDS = ("output_schema_id", "inference_log", "schedule")
TIMEZONE = "UTC"


def build_parser():
    p = params.parser("quality_monitor", "Create or update the inference table's monitor, then refresh it.")
    params.add_model(p)
    p.add_argument("--assets_dir", required=True, help="workspace folder for the monitor's dashboard")
    p.add_argument("--schedule", default="0 0 9 * * ?", help="quartz cron expression of scheduled refreshes")
    p.add_argument("--pause_status", choices=("PAUSED", "UNPAUSED"), default="UNPAUSED")
    return p


def build_remove_parser():
    p = params.parser("remove_quality_monitor", "Delete the inference table's monitor (bundle destroy does not).")
    params.add_model(p)
    return p


def inference_log() -> InferenceLogConfig:
    """What the monitor analyses: model.py's problem and label, the inference table's columns."""
    return InferenceLogConfig(
        problem_type=InferenceProblemType(f"INFERENCE_PROBLEM_TYPE_{PROBLEM_TYPE.upper()}"),
        timestamp_column="scored_at",
        granularities=[AggregationGranularity.AGGREGATION_GRANULARITY_1_DAY],
        prediction_column="prediction",
        model_id_column="model_version",
        label_column=LABEL,
    )


def changed_fields(current: DataProfilingConfig | None, wanted: DataProfilingConfig) -> list[str]:
    """The fields this module manages that differ between what exists and what is wanted."""

    def managed(config: DataProfilingConfig | None) -> dict:
        if config is None:
            return {}
        cron = config.schedule
        return {
            "output_schema_id": config.output_schema_id,
            "inference_log": config.inference_log.as_dict() if config.inference_log else None,
            "schedule": (cron.quartz_cron_expression, cron.timezone_id) if cron else None,
        }

    now, then = managed(current), managed(wanted)
    return [field for field in MANAGED_FIELDS if now.get(field) != then[field]]


def ensure_monitor(w, model_ref: ModelRef, assets_dir: str, schedule: str | None) -> tuple[str, str]:
    """Create or update the monitor of the model's inference table (``schedule`` None: no scheduled
    refreshes); return (what was done, the table's id)."""
    table = model_ref.predictions_table
    try:
        table_id = w.tables.get(table).table_id
    except NotFound:
        raise JobError(f"{table} does not exist yet: run the batch inference job first") from None
    wanted = DataProfilingConfig(
        output_schema_id=w.schemas.get(f"{model_ref.catalog}.{model_ref.schema}").schema_id,
        assets_dir=assets_dir,
        inference_log=inference_log(),
        schedule=None if schedule is None else CronSchedule(quartz_cron_expression=schedule, timezone_id=TIMEZONE),
    )
    try:
        current = w.data_quality.get_monitor(TABLE, table_id)
    except NotFound:
        w.data_quality.create_monitor(Monitor(object_type=TABLE, object_id=table_id, data_profiling_config=wanted))
        return CREATED, table_id
    fields = changed_fields(current.data_profiling_config, wanted)
    if not fields:
        return UNCHANGED, table_id
    w.data_quality.update_monitor(
        TABLE,
        table_id,
        Monitor(object_type=TABLE, object_id=table_id, data_profiling_config=wanted),
        update_mask=",".join(f"data_profiling_config.{field}" for field in fields),
    )
    return UPDATED, table_id


def request_refresh(w, table_id: str) -> int | None:
    """Start a refresh; None when one is already running (it will see the new rows)."""
    try:
        refresh = w.data_quality.create_refresh(TABLE, table_id, Refresh(object_type=TABLE, object_id=table_id))
    except ResourceConflict:
        return None
    return refresh.refresh_id


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    schedule = None if args.pause_status == "PAUSED" else args.schedule
    w = workspace_client()
    action, table_id = ensure_monitor(w, model_ref, args.assets_dir, schedule)
    if action == CREATED:  # a new monitor computes its first metrics by itself
        started = "its first refresh starts with it"
    else:
        refresh = request_refresh(w, table_id)
        started = f"refresh {refresh} started" if refresh is not None else "a refresh is already running"
    timing = "no schedule (paused)" if schedule is None else f"schedule {schedule} {TIMEZONE}"
    print(f"Monitor on {model_ref.predictions_table} {action}, {timing}; {started}")
    return action


@params.entry_point(build_remove_parser)
def remove(argv: list[str] | None = None) -> bool:
    """Delete the monitor (its metric tables and dashboard stay); True if there was one."""
    args = build_remove_parser().parse_args(argv)
    table = params.model_ref(args).predictions_table
    w = workspace_client()
    try:
        w.data_quality.delete_monitor(TABLE, w.tables.get(table).table_id)
        existed = True
    except NotFound:
        existed = False
    print(f"Monitor on {table}: {'deleted' if existed else 'did not exist'}")
    return existed


if __name__ == "__main__":
    main()
