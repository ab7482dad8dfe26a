"""Local stand-in for ``databricks.feature_engineering`` (development only, not in the job wheel).

``runtime.feature_engineering()`` hands jobs this module when they run locally, and the real
``databricks.feature_engineering`` on Databricks; both offer ``FeatureEngineeringClient`` and
``FeatureLookup`` with the calls the jobs make, keyword for keyword. It follows the semantics
the client documents (databricks-feature-engineering 0.18.2, ``databricks/feature_engineering/
client.py``), on the local runner's Parquet tables and MLflow registry:

- ``create_table(name, primary_keys, df, timeseries_column)``: the timeseries column must be one
  of the primary keys (``create_table`` raises ``ValueError`` otherwise); an existing table is
  an error, as in Unity Catalog.
- ``write_table(name, df, mode="merge")``: upsert by primary key; "merge" is the only mode.
- ``create_training_set(df, feature_lookups, label, exclude_columns)``: for each lookup, the
  feature row with the same key and the latest timestamp key not after the row's
  ``timestamp_lookup_key`` (a point-in-time join), else null.
- ``log_model(model, artifact_path, flavor, training_set, registered_model_name)``: a pyfunc
  model whose data folder ``feature_store/`` holds the raw model (``raw_model/``) and its
  ``feature_spec.yaml`` (the layout of ``_training_scoring_client.log_model``); its signature
  has the source columns as required inputs and the looked-up features as optional ones
  (``signature_utils.get_mlflow_signature_from_feature_spec``).
- ``score_batch(model_uri, df)``: looks up the features ``df`` lacks (features present in ``df``
  are used as given) and appends ``prediction``.

- ``create_online_store(name, capacity)``, ``get_online_store(name)`` (None when missing) and
  ``publish_table(online_store, source_table_name, online_table_name, publish_mode)``: the
  Databricks Online Feature Store (Lakebase) calls of 0.13.0 and later. Publishing copies the
  latest row of each key (the primary key without the timestamp key) into the online table, a
  local table of that name; ``TRIGGERED`` and ``CONTINUOUS`` need Change Data Feed on the source
  table (``enable_change_data_feed``, what ``ALTER TABLE ... SET TBLPROPERTIES
  (delta.enableChangeDataFeed = true)`` does on Databricks), as the client's docstring says.

The feature spec records full table names, so a model scores from the tables it was logged with.
A model served (MLflow's scoring server with ``SERVING_ENV`` set, as ``scoring_server`` runs it)
looks the features a request lacks up in the online tables its feature tables were published to,
as Model Serving's automatic feature lookup does; loaded anywhere else it looks them up in the
feature tables, point in time, as ``score_batch`` does.
Every table written, read or published is recorded in ``<state>/feature_tables.jsonl`` for the scenario.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from . import environment

SPEC_FILE = "feature_spec.yaml"
DATA_FOLDER = "feature_store"
RAW_MODEL = "raw_model"
ACCESS_LOG = "feature_tables.jsonl"
ONLINE_STORES = "online_stores.json"
CAPACITIES = ("CU_1", "CU_2", "CU_4", "CU_8")  # create_online_store's documented capacities
PUBLISH_MODES = ("SNAPSHOT", "TRIGGERED", "CONTINUOUS")
SERVING_ENV = "MLOPS_LOCAL_SERVING"  # set in a model server's environment: look features up online


def _root() -> Path:
    from .project import project_module

    root = project_module("runtime").local_dir()
    if root is None:
        raise RuntimeError("the local feature-engineering stand-in runs only with MLOPS_LOCAL_DIR set")
    return root


def _spark():
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() or environment.spark_session(_root())


def _meta_path(name: str) -> Path:
    path = environment.table_path(_root(), name)
    return path.with_name(path.name + ".feature_table.json")


def record(action: str, name: str, rows: int | None = None) -> None:
    """Append one table access to the state's access log (read by the scenario's summary)."""
    entry = {"action": action, "table": name, "rows": rows, "at": dt.datetime.now().isoformat(timespec="seconds")}
    with (_root() / ACCESS_LOG).open("a") as log:
        log.write(json.dumps(entry) + "\n")


def accesses(root: Path) -> list[dict]:
    path = root / ACCESS_LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _meta(name: str) -> dict:
    return json.loads(_meta_path(name).read_text())


def enable_change_data_feed(name: str) -> None:
    """Change Data Feed on feature table ``name`` (a table property, as on Delta)."""
    meta = _meta(name)
    meta["change_data_feed"] = True
    _meta_path(name).write_text(json.dumps(meta))


def _stores() -> dict:
    path = _root() / ONLINE_STORES
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class DatabricksOnlineStore:
    name: str
    capacity: str
    read_replica_count: int | None = None
    state: str = "AVAILABLE"


def _left_join(points, rows, keys: list[str], at: str | None = None):
    """``points`` (pandas) with the columns of its matching row of ``rows`` (nulls where none):
    the row with the same ``keys`` or, with ``at``, the latest such row whose ``__feature_ts`` is
    not after the point's ``at``. ``points`` keep their order (``__point``).

    A point with a null key or a null ``at`` matches nothing, as in a SQL join (pandas would
    match null to null).
    """
    complete = points[[*keys, *([at] if at else [])]].notna().all(axis=1)
    matchable = points[complete].astype({key: rows[key].dtype for key in keys})
    if at:
        found = pd.merge_asof(
            matchable.sort_values(at),
            rows.sort_values("__feature_ts"),
            left_on=at,
            right_on="__feature_ts",
            by=keys,
            direction="backward",
            allow_exact_matches=True,  # "not after": a feature row of the same instant counts
        ).drop(columns="__feature_ts")
    else:
        found = matchable.merge(rows, on=keys, how="left")
    return pd.concat([found, points[~complete]]).sort_values("__point")


def _feature_rows(name: str):
    """The rows of feature table ``name`` (pandas) and its Spark schema, read from its Parquet file
    directly (``write_table`` wrote it): no Spark job for a local sample."""
    path = environment.table_path(_root(), name)
    if not environment.table_exists(_root(), name):
        raise ValueError(f"Feature table '{name}' has no rows yet: run the feature pipeline (write_table) first.")
    rows = pq.read_table(path)
    return _naive_utc(rows.to_pandas()), from_arrow_schema(rows.schema)


def _naive_utc(frame):
    """``frame`` with its times as ``toPandas`` gives them: naive UTC (the local session's time
    zone), in nanoseconds (Parquet holds microseconds, which pandas would keep)."""
    times = [name for name, dtype in frame.dtypes.items() if pd.api.types.is_datetime64_any_dtype(dtype)]
    return frame.assign(**{name: _naive_ns(frame[name]) for name in times})


def _naive_ns(times):
    return (times.dt.tz_convert(None) if times.dt.tz is not None else times).astype("datetime64[ns]")


def _nullable_integers(frame, schema):
    """``frame`` with its integer columns (by ``schema``) as pandas' nullable integers: a join
    that finds no row turns an integer column into floats with NaN, which Spark would refuse."""
    from pyspark.sql.types import IntegralType

    integers = [f.name for f in schema.fields if isinstance(f.dataType, IntegralType)]
    return frame.astype({name: "Int64" for name in integers})


@dataclass
class FeatureLookup:
    table_name: str
    lookup_key: str | list[str]
    feature_names: list[str] | None = None
    timestamp_lookup_key: str | None = None

    def keys(self) -> list[str]:
        return [self.lookup_key] if isinstance(self.lookup_key, str) else list(self.lookup_key)


@dataclass
class FeatureTable:
    name: str
    primary_keys: list[str]
    timestamp_keys: list[str] = field(default_factory=list)
    change_data_feed: bool = False
    online_tables: dict[str, str] = field(default_factory=dict)  # online store -> online table


@dataclass
class TrainingSet:
    joined: Any  # the rows with their features, before exclude_columns (computed: see _lookup)
    spec: dict

    def load_df(self):
        return self.joined.drop(*self.spec["exclude_columns"])


class FeatureEngineeringClient:
    """The calls of ``databricks.feature_engineering.FeatureEngineeringClient`` the jobs make."""

    def get_table(self, *, name: str) -> FeatureTable:
        meta = _meta_path(name)
        if not meta.exists():
            raise ValueError(f"Feature table '{name}' does not exist.")
        return FeatureTable(**json.loads(meta.read_text()))

    def _exists(self, name: str) -> bool:
        return _meta_path(name).exists()

    def create_table(self, *, name: str, primary_keys, df=None, timeseries_column: str | None = None, **kwargs):
        timeseries_column = timeseries_column or kwargs.pop("timestamp_keys", None)
        if isinstance(timeseries_column, list):
            timeseries_column = timeseries_column[0] if timeseries_column else None
        keys = [primary_keys] if isinstance(primary_keys, str) else list(primary_keys)
        if timeseries_column is not None and timeseries_column not in keys:
            raise ValueError(
                f"Timeseries column '{timeseries_column}' is not in primary_keys. "
                "Timeseries columns must be primary keys."
            )
        if self._exists(name):
            raise ValueError(f"Table '{name}' already exists.")
        table = FeatureTable(name, keys, [timeseries_column] if timeseries_column else [])
        _meta_path(name).parent.mkdir(parents=True, exist_ok=True)
        _meta_path(name).write_text(json.dumps(table.__dict__))
        if df is not None:
            self.write_table(name=name, df=df)
        return table

    def read_table(self, *, name: str):
        self.get_table(name=name)
        df = environment.read_table(_spark(), _root(), name)
        if df is None:
            df = _spark().createDataFrame([], "dummy int").drop("dummy")
        return df

    def write_table(self, *, name: str, df, mode: str = "merge") -> None:
        if mode != "merge":
            raise ValueError(f"Unsupported mode '{mode}'. 'merge' is the only supported mode.")
        table = self.get_table(name=name)
        missing = [k for k in table.primary_keys if k not in df.columns]
        if missing:
            raise ValueError(f"The DataFrame lacks the primary key columns {missing} of {name}")
        # The stand-in merges on the driver, in pandas: its tables are local samples, and the Spark
        # jobs of an anti-join and a write cost more than the merge. df is read once, before the
        # table it may read is replaced (a Delta MERGE reads its source first too).
        frame = _naive_utc(df.toPandas())
        if frame.duplicated(table.primary_keys).any():
            # Delta's MERGE refuses a source with two rows for one target row.
            raise ValueError(f"The DataFrame has several rows with the same primary key {table.primary_keys}")
        path = environment.table_path(_root(), name)
        schema = to_arrow_schema(df.schema)  # Spark's types: a time is microseconds, UTC
        if environment.table_exists(_root(), name):
            current = pq.read_table(path)
            kept = [schema.field(f.name) if f.name in schema.names else f for f in current.schema]
            schema = pa.schema([*kept, *(f for f in schema if f.name not in current.schema.names)])
            current = _naive_utc(current.to_pandas())
            replaced = current.set_index(table.primary_keys).index.isin(frame.set_index(table.primary_keys).index)
            merged = pd.concat([current[~replaced], frame], ignore_index=True)
        else:
            merged = frame
        # Written as Spark writes a table (one Parquet file and _SUCCESS), and read back by Spark.
        staging = path.with_name(path.name + ".merging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pandas(merged, schema=schema, preserve_index=False),
            staging / "part-00000.parquet",
            coerce_timestamps="us",  # Spark reads no nanoseconds
        )
        environment.store_schema(staging, from_arrow_schema(schema))
        (staging / "_SUCCESS").touch()
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)
        record("write", name, len(frame))

    # --- online stores --------------------------------------------------------------

    def get_online_store(self, *, name: str) -> DatabricksOnlineStore | None:
        found = _stores().get(name)
        return DatabricksOnlineStore(**found) if found else None

    def create_online_store(
        self, *, name: str, capacity: str, read_replica_count: int | None = None, **kwargs
    ) -> DatabricksOnlineStore:
        if capacity not in CAPACITIES:
            raise ValueError(f"capacity {capacity!r} is not one of {', '.join(CAPACITIES)}")
        stores = _stores()
        if name in stores:
            raise ValueError(f"Online store '{name}' already exists.")
        store = DatabricksOnlineStore(name, capacity, read_replica_count)
        stores[name] = store.__dict__
        (_root() / ONLINE_STORES).write_text(json.dumps(stores, indent=1))
        return store

    def publish_table(
        self,
        *,
        online_store: DatabricksOnlineStore,
        source_table_name: str,
        online_table_name: str,
        publish_mode: str = "TRIGGERED",
        **kwargs,
    ):
        """Copy the latest row of each key of ``source_table_name`` into ``online_table_name``."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        if online_store.name not in _stores():
            raise ValueError(f"Online store '{online_store.name}' does not exist.")
        if publish_mode not in PUBLISH_MODES:
            raise ValueError(f"publish_mode {publish_mode!r} is not one of {', '.join(PUBLISH_MODES)}")
        if len(online_table_name.split(".")) != 3:
            raise ValueError(
                f"Online table name '{online_table_name}' is not valid. "
                "Expected format '<catalog_name>.<schema_name>.<table_name>'"
            )
        table = self.get_table(name=source_table_name)
        if publish_mode != "SNAPSHOT" and not table.change_data_feed:
            raise ValueError(
                f"Change Data Feed must be enabled on {source_table_name} to publish it in {publish_mode} mode"
            )
        keys = [k for k in table.primary_keys if k not in table.timestamp_keys]
        rows = self.read_table(name=source_table_name)
        if table.timestamp_keys:
            latest = Window.partitionBy(*keys).orderBy(F.col(table.timestamp_keys[0]).desc())
            rows = rows.withColumn("__rank", F.row_number().over(latest)).where("__rank = 1").drop("__rank")
        path = environment.table_path(_root(), online_table_name)
        staging = path.with_name(path.name + ".publishing")
        shutil.rmtree(staging, ignore_errors=True)
        rows.write.parquet(str(staging))
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)
        table.online_tables[online_store.name] = online_table_name
        _meta_path(source_table_name).write_text(json.dumps(table.__dict__))
        record("publish", online_table_name, rows.count())
        return online_table_name

    def _lookup_online(self, df, lookups: list[FeatureLookup]):
        """``df`` with each lookup's features from the online table its feature table was published to."""
        from pyspark.sql import functions as F

        for lookup in lookups:
            table = self.get_table(name=lookup.table_name)
            if not table.online_tables:
                raise ValueError(
                    f"Feature table {lookup.table_name} is not published to an online store: "
                    "the served model cannot look its features up"
                )
            online = environment.read_table(_spark(), _root(), next(iter(table.online_tables.values())))
            record("read", next(iter(table.online_tables.values())))
            keys = lookup.keys()
            table_keys = [k for k in table.primary_keys if k not in table.timestamp_keys]
            names = lookup.feature_names or [c for c in online.columns if c not in table.primary_keys]
            wanted = [n for n in names if n not in df.columns]
            if wanted:
                renamed = online.select(*[F.col(t).alias(k) for t, k in zip(table_keys, keys, strict=True)], *wanted)
                df = df.join(renamed, keys, "left")
        return df

    # --- training and scoring -------------------------------------------------------

    def _lookup(self, df, lookups: list[FeatureLookup]):
        """``df`` with each lookup's features: the latest row not after the timestamp lookup key.

        The stand-in joins on the driver, in pandas (``merge_asof``): its tables are local samples,
        and a handful of small Spark jobs costs more than the join. The result is a Spark
        DataFrame of ``df``'s rows, in their order, with the features appended.
        """
        from pyspark.sql.types import StructType

        frame = df.toPandas()
        frame["__point"] = range(len(frame))
        schema = StructType(list(df.schema.fields))
        for lookup in lookups:
            table = self.get_table(name=lookup.table_name)
            features, types = _feature_rows(lookup.table_name)
            record("read", lookup.table_name)
            keys = lookup.keys()
            table_keys = [k for k in table.primary_keys if k not in table.timestamp_keys]
            if len(keys) != len(table_keys):
                raise ValueError(f"lookup_key {keys} does not match the primary keys {table_keys} of {table.name}")
            names = lookup.feature_names or [c for c in features.columns if c not in table.primary_keys]
            wanted = [n for n in names if n not in frame.columns]  # features given in df are used as given
            if not wanted:
                continue
            rows = features[[*table_keys, *table.timestamp_keys, *wanted]].set_axis(
                [*keys, *("__feature_ts" for _ in table.timestamp_keys), *wanted], axis=1
            )
            if table.timestamp_keys and lookup.timestamp_lookup_key:
                frame = _left_join(frame, rows, keys, lookup.timestamp_lookup_key)
            else:  # the latest row of each key
                if table.timestamp_keys:
                    rows = rows.sort_values("__feature_ts").drop_duplicates(keys, keep="last")
                frame = _left_join(frame, rows.drop(columns="__feature_ts", errors="ignore"), keys)
            for name in wanted:
                schema.add(name, types[name].dataType, nullable=True)
        joined = _spark().createDataFrame(_nullable_integers(frame[schema.fieldNames()], schema), schema)
        # One partition, as a scan of a local table of this size has: each partition a scoring UDF
        # reads starts a Python worker that loads the model.
        return joined.coalesce(1)

    def create_training_set(
        self, *, df, feature_lookups: list[FeatureLookup], label, exclude_columns: list[str] | None = None, **kwargs
    ) -> TrainingSet:
        labels = [label] if isinstance(label, str) else list(label or [])
        excluded = list(exclude_columns or [])
        joined = self._lookup(df, feature_lookups)
        source = [c for c in df.columns if c not in labels]
        looked_up = [c for c in joined.columns if c not in df.columns]
        spec = {
            "tables": sorted({lookup.table_name for lookup in feature_lookups}),
            "lookups": [lookup.__dict__ for lookup in feature_lookups],
            "source_columns": source,
            "features": looked_up,
            "exclude_columns": excluded,
            # What the raw model gets, in this order: the kept source columns, then the features.
            "model_inputs": [c for c in source if c not in excluded] + looked_up,
            "labels": labels,
        }
        return TrainingSet(joined, spec)

    def log_model(
        self,
        *,
        model,
        artifact_path: str,
        flavor,
        training_set: TrainingSet | None = None,
        registered_model_name: str | None = None,
        infer_input_example: bool = False,
        **kwargs,
    ):
        if training_set is None:
            raise ValueError("the local stand-in logs models from a training_set")
        from mlflow.models import infer_signature
        from mlflow.types import ColSpec, Schema

        spec = training_set.spec
        head = training_set.joined.limit(5).toPandas()
        inputs = head[spec["source_columns"] + spec["features"]]
        raw_inputs = head[spec["model_inputs"]]
        inferred = infer_signature(inputs, model.predict(raw_inputs))
        optional = set(spec["features"])
        input_schema = Schema(
            [ColSpec(c.type, c.name, required=c.name not in optional) for c in inferred.inputs.inputs]
        )
        signature = mlflow.models.ModelSignature(inputs=input_schema, outputs=inferred.outputs)
        requirements = kwargs.pop("pip_requirements", None)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / DATA_FOLDER
            flavor.save_model(model, str(data / RAW_MODEL), pip_requirements=requirements, **kwargs)
            (data / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
            return mlflow.pyfunc.log_model(
                name=artifact_path,
                loader_module=__name__,
                data_path=str(data),
                signature=signature,
                input_example=inputs if infer_input_example else None,
                pip_requirements=requirements,
                registered_model_name=registered_model_name,
            )

    def score_batch(self, *, model_uri: str, df, result_type: str = "double", **kwargs):
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
            data = local / "data" / DATA_FOLDER
            spec = yaml.safe_load((data / SPEC_FILE).read_text())
            lacking = [c for c in spec["source_columns"] if c not in df.columns]
            if lacking:
                raise ValueError(f"score_batch: the DataFrame lacks the columns {lacking} of the model's feature spec")
            joined = self._lookup(df, [FeatureLookup(**lookup) for lookup in spec["lookups"]])
            from pyspark.sql import functions as F

            # spark_udf copies the model into MLflow's own temporary folder, which a local session's
            # workers load it from (mlflow.pyfunc.spark_udf, local mode): ``tmp`` may go, and the
            # result stays lazy, as the client's is.
            predict = mlflow.pyfunc.spark_udf(
                _spark(), str(data / RAW_MODEL), result_type=result_type, env_manager="local"
            )
            return joined.withColumn("prediction", predict(F.struct(*spec["model_inputs"])))


class _Wrapper:
    """The pyfunc side of a model logged by ``log_model`` (``databricks.feature_store.mlflow_model`` on Databricks)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.spec = yaml.safe_load((self.path / SPEC_FILE).read_text())
        self.raw = mlflow.pyfunc.load_model(str(self.path / RAW_MODEL))

    def predict(self, df, params=None):
        if isinstance(df, pd.DataFrame) and all(c in df.columns for c in self.spec["model_inputs"]):
            return pd.DataFrame({"prediction": self.raw.predict(df[self.spec["model_inputs"]])})
        frame = df if isinstance(df, pd.DataFrame) else df.toPandas()
        frame = frame.assign(__row=range(len(frame)))
        client = FeatureEngineeringClient()
        lookup = client._lookup_online if os.environ.get(SERVING_ENV) else client._lookup
        joined = lookup(_spark().createDataFrame(frame), [FeatureLookup(**x) for x in self.spec["lookups"]])
        rows = joined.orderBy("__row").select(*self.spec["model_inputs"]).toPandas()
        return pd.DataFrame({"prediction": self.raw.predict(rows)})


def _load_pyfunc(path: str) -> _Wrapper:
    return _Wrapper(path)
