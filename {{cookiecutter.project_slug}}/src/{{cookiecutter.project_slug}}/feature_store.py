"""Feature engineering in Unity Catalog: the feature pipeline job, and how training, scoring
and promotion use the feature tables.

The tables are declared in ``model.FEATURE_TABLES`` and computed by the transforms in
``features.py``; each lives in the environment's own catalog and schema,
``<catalog>.<schema>.<table>``. The calls are those of ``databricks-feature-engineering``'s
``FeatureEngineeringClient`` (``databricks/feature_engineering/client.py``, 0.18.2):
``runtime.feature_engineering()`` gives the real client on Databricks and the local
stand-in (``mlops_local.feature_engineering``) on this machine.

- ``main`` (entry point ``features``, the feature pipeline job and the first task of the
  jobs that read features): computes the feature rows of a window of the source table and
  merges them by primary key (``write_table(mode="merge")``), creating each table with its
  primary key and timeseries key on first run (``create_table(timeseries_column=...)``).
  Re-running a window writes the same rows again: nothing changes.
- ``training_sets``: labelled rows with their lookup keys, joined point-in-time to the
  feature tables by ``create_training_set`` (each row sees only feature rows whose timestamp
  key is not after its own timestamp).
- ``log_model``: ``fe.log_model`` stores the feature spec (the full table names and lookups)
  with the model.
- ``score``: ``fe.score_batch`` on the lookup keys only; the client looks the features up.
- ``publish`` (``main`` with ``--online_store``, where the project serves the model): the
  feature tables are published to a Databricks Online Feature Store (Lakebase), created when
  missing (``create_online_store``), so the serving endpoint looks the features of a request
  that carries only the lookup keys up there. Each run publishes again (``publish_table`` in
  its default ``TRIGGERED`` mode, which needs Change Data Feed on the table), so the online copy
  follows every merge; ``databricks-feature-engineering`` 0.13.0 or later.
- ``relog``: a promoted model is logged again into the destination catalog with a feature spec
  built from the destination's own tables. A model logged with ``fe.log_model`` records full
  table names (``_training_scoring_client.log_model`` saves ``feature_spec.yaml`` with them, and
  ``score_batch`` reads them back through ``uc_utils.get_feature_spec_with_full_table_names``,
  whose ``catalog_name_override`` no public call sets), so a version copied with
  ``copy_model_version`` would keep looking its features up in the catalog it came from.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import features, model, params
from .data import load_rows, parse_date, split_by_date
from .names import ModelRef
from .runtime import JobError, enable_change_data_feed, feature_engineering, get_spark

# Where fe.log_model puts the raw model inside the logged model (mlflow_model_constants.RAW_MODEL_FOLDER
# under the pyfunc data folder "feature_store", databricks-feature-engineering 0.18.2).
RAW_MODEL_PATH = "data/feature_store/raw_model"


def table_name(catalog: str, schema: str, table: model.FeatureTable) -> str:
    return f"{catalog}.{schema}.{table.name}"


def table_names(catalog: str, schema: str) -> list[str]:
    return [table_name(catalog, schema, table) for table in model.FEATURE_TABLES]


def lookups(catalog: str, schema: str) -> list:
    """One point-in-time FeatureLookup per table of ``model.FEATURE_TABLES`` in ``catalog.schema``."""
    fe = feature_engineering()
    return [
        fe.FeatureLookup(
            table_name=table_name(catalog, schema, table),
            lookup_key=list(table.lookup_key),
            feature_names=list(table.features),
            timestamp_lookup_key=model.TIMESTAMP,
        )
        for table in model.FEATURE_TABLES
    ]


# --- The feature pipeline -----------------------------------------------------------


def build_parser():
    p = params.parser("features", "Compute a window of the feature tables and merge it by primary key.")
    p.add_argument("--catalog", required=True, help="Unity Catalog catalog of the environment")
    p.add_argument("--schema", required=True, help="schema holding the feature tables")
    p.add_argument("--source_table", default=model.SOURCE_TABLE)
    p.add_argument("--start_date", default="", help="first day of the window (yyyy-mm-dd; empty: see --incremental)")
    p.add_argument("--end_date", default="", help="last day of the window (yyyy-mm-dd; empty: the latest rows)")
    p.add_argument(
        "--incremental",
        type=params.boolean,
        default=False,
        help="true and no start_date: start at the last day the feature tables already hold",
    )
    p.add_argument("--online_store", default="", help="online store to publish the tables to (empty: none)")
    p.add_argument("--online_store_capacity", default="CU_1", help="capacity of the online store when it is created")
    return p


def exists(client, name: str) -> bool:
    """Whether feature table ``name`` exists: ``get_table`` raises for one that does not."""
    try:
        client.get_table(name=name)
    except Exception:
        return False
    return True


def last_day(catalog: str, schema: str) -> dt.date | None:
    """The last day the first feature table holds (its timestamp key), or None when it is new or empty."""
    table = model.FEATURE_TABLES[0]
    name = table_name(catalog, schema, table)
    client = feature_engineering().FeatureEngineeringClient()
    if not exists(client, name):
        return None
    latest = client.read_table(name=name).agg(F.max(table.timestamp_key))
    value = latest.first()[0]
    return value.date() if value is not None else None


def write_features(catalog: str, schema: str, rows: DataFrame) -> dict[str, int]:
    """Merge the feature rows of ``rows`` into each table, creating it on first run; rows per table."""
    client = feature_engineering().FeatureEngineeringClient()
    written = {}
    for table in model.FEATURE_TABLES:
        name = table_name(catalog, schema, table)
        transform = getattr(features, table.name, None)
        if transform is None:
            raise JobError(f"features.py has no transform {table.name}(rows) for the feature table {table.name}")
        df = transform(rows).dropDuplicates(list(table.primary_keys)).cache()
        if exists(client, name):
            client.write_table(name=name, df=df, mode="merge")
        else:
            client.create_table(
                name=name,
                primary_keys=list(table.primary_keys),
                timeseries_column=table.timestamp_key,
                df=df,
                description=f"{table.name}: computed by features.{table.name} from {model.SOURCE_TABLE}",
            )
        written[name] = df.count()
        df.unpersist()
    return written


def online_table_name(name: str) -> str:
    """The online table of feature table ``name``: ``<catalog>.<schema>.<table>_online``."""
    return f"{name}_online"


def publish(catalog: str, schema: str, store_name: str, capacity: str = "CU_1") -> dict[str, str]:
    """Publish every feature table of ``catalog.schema`` to online store ``store_name`` (created
    when missing); feature table -> online table."""
    client = feature_engineering().FeatureEngineeringClient()
    store = client.get_online_store(name=store_name)
    if store is None:
        print(f"Creating the online store {store_name} ({capacity})")
        store = client.create_online_store(name=store_name, capacity=capacity)
    published = {}
    for name in table_names(catalog, schema):
        enable_change_data_feed(name)
        online = online_table_name(name)
        # TRIGGERED, the default in 0.13.0 (which has no publish_mode) and later: a first publish
        # creates the online table and its sync pipeline, a later one starts that pipeline again.
        client.publish_table(online_store=store, source_table_name=name, online_table_name=online)
        published[name] = online
    return published


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> dict[str, int]:
    args = build_parser().parse_args(argv)
    spark = get_spark()
    start = parse_date(args.start_date, "start_date")
    end = parse_date(args.end_date, "end_date")
    if start is None and args.incremental:
        start = last_day(args.catalog, args.schema)
    rows = load_rows(spark, args.source_table, start=start, end=end)
    written = write_features(args.catalog, args.schema, rows)
    window = f"{start or 'the first row'} to {end or 'the last row'}"
    for name, count in written.items():
        print(f"Merged {count} rows of {args.source_table} ({window}) into the feature table {name}")
    if args.online_store:
        for name, online in publish(args.catalog, args.schema, args.online_store, args.online_store_capacity).items():
            print(f"Published the feature table {name} to {online} in the online store {args.online_store}")
    return written


# --- Training, scoring, promotion ---------------------------------------------------


def training_set(model_ref: ModelRef, rows: DataFrame, keep_keys: bool = False):
    """``create_training_set`` of ``rows``' lookup keys and label, against ``model_ref``'s catalog's tables.

    ``keep_keys``: keep the lookup keys in ``load_df()`` (for evaluating a logged model, whose
    signature names them), rather than excluding what the model does not take.
    """
    client = feature_engineering().FeatureEngineeringClient()
    return client.create_training_set(
        df=features.lookup_rows(rows),
        feature_lookups=lookups(model_ref.catalog, model_ref.schema),
        label=model.LABEL,
        exclude_columns=[] if keep_keys else [key for key in model.LOOKUP_KEYS if key not in model.FEATURES],
    )


def labelled_rows(spark: SparkSession, table: str, end_date: str, sample_fraction: float):
    """The training rows and the hold-out days of ``table`` up to ``end_date`` (``data.split_by_date``)."""
    end = parse_date(end_date, "training_end_date")
    if end is None:
        raise JobError("training_end_date is required (yyyy-mm-dd)")
    return split_by_date(load_rows(spark, table, end=end, sample_fraction=sample_fraction), end)


def training_sets(spark: SparkSession, model_ref: ModelRef, table: str, end_date: str, sample_fraction: float):
    """Training sets of the training rows and of the hold-out days of ``table`` up to ``end_date``."""
    train_rows, holdout_rows = labelled_rows(spark, table, end_date, sample_fraction)
    return training_set(model_ref, train_rows), training_set(model_ref, holdout_rows)


def holdout_frame(spark: SparkSession, model_ref: ModelRef, table: str, end_date: str, sample_fraction: float):
    """The looked-up hold-out days of ``table`` up to ``end_date``, with their lookup keys (the
    signature of a model logged by ``fe.log_model`` names them): what validation evaluates."""
    _, holdout_rows = labelled_rows(spark, table, end_date, sample_fraction)
    return training_set(model_ref, holdout_rows, keep_keys=True).load_df()


def log_model(estimator, train_set, model_ref: ModelRef, **kwargs) -> str:
    """``fe.log_model`` with the training set's feature spec, registered as a new version; the version."""
    client = feature_engineering().FeatureEngineeringClient()
    run = mlflow.active_run()
    client.log_model(
        model=estimator,
        artifact_path="model",
        flavor=model.FEATURE_STORE_FLAVOR,
        **model.FEATURE_STORE_LOG_OPTIONS,
        training_set=train_set,
        registered_model_name=model_ref.full_name,
        infer_input_example=True,
        **kwargs,
    )
    found = MlflowClient().search_model_versions(f"name='{model_ref.full_name}' and run_id='{run.info.run_id}'")
    return str(max(int(v.version) for v in found))


def score(df: DataFrame, model_ref: ModelRef, version: str) -> DataFrame:
    """``fe.score_batch`` of ``df`` (its lookup keys; features it already has are used as given)."""
    client = feature_engineering().FeatureEngineeringClient()
    scored = client.score_batch(model_uri=model_ref.uri(version), df=df, result_type=model.PREDICTION_TYPE)
    label = [model.LABEL] if model.LABEL in df.columns else []
    return scored.select(model.TIMESTAMP, *model.FEATURES, *label, "prediction").withColumns(
        {
            "model_name": F.lit(model_ref.full_name),
            "model_version": F.lit(str(version)),
            "scored_at": F.current_timestamp(),
        }
    )


def relog(source_uri: str, destination: ModelRef, table: str, end_date: str, sample_fraction: float) -> str:
    """Log the source version's fitted model into ``destination`` with the destination's feature tables.

    The fitted estimator is the source's own (nothing is retrained); the feature spec is built
    by ``create_training_set`` against ``<destination catalog>.<schema>.<table>``, so the new
    version looks its features up there. Returns the new version.
    """
    spark = get_spark()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source_uri, dst_path=tmp))
        estimator = model.FEATURE_STORE_FLAVOR.load_model(str(local / RAW_MODEL_PATH))
    train_rows, _ = labelled_rows(spark, table, end_date, sample_fraction)
    train_set = training_set(destination, train_rows)
    from .train import pip_requirements, without_uv_project_detection  # here: train imports this module

    run_name = f"promote {source_uri} to {destination.full_name}"
    with mlflow.start_run(run_name=run_name), without_uv_project_detection():
        mlflow.set_tag("source_model_version", source_uri)
        return log_model(estimator, train_set, destination, pip_requirements=pip_requirements())


def feature_tables_read(model_uri: str) -> list[str]:
    """The feature tables a logged model looks its features up in (from its feature spec)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{model_uri}/data/feature_store", dst_path=tmp))
        import yaml

        text = yaml.safe_load((spec / "feature_spec.yaml").read_text())
    if "tables" in text:  # the local stand-in's spec
        return sorted(text["tables"])
    return sorted(info["table_name"] for info in text.get("table_infos", []))


if __name__ == "__main__":
    main()
