"""Where the jobs run: Databricks, or this machine.

On Databricks the jobs use the cluster's Spark session, Unity Catalog tables, the
``databricks-uc`` model registry, ``dbutils`` task values and the job's identity for the
workspace's APIs. When the environment variable ``MLOPS_LOCAL_DIR`` names a folder (the
local runner and the tests set it), each of these calls is handed to the local runner's
``mlops_local.environment`` and ``mlops_local.workspace``, a development-only package that
is not in the job wheel: a local Spark session, Parquet tables, an MLflow SQLite registry,
the runner's task values and a stand-in workspace. This module is the only one that knows
which of the two it is; the jobs' code is the same in both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOCAL_DIR_ENV = "MLOPS_LOCAL_DIR"


class JobError(RuntimeError):
    """A failure with a message meant for the person running the job."""


def local_dir() -> Path | None:
    value = os.environ.get(LOCAL_DIR_ENV)
    return Path(value).resolve() if value else None


def _local():
    """The local runner's side of this module, told which job package it serves."""
    from mlops_local import environment, project

    project.use_package(__package__)
    return environment


def get_spark() -> SparkSession:
    """The job's Spark session."""
    root = local_dir()
    if root is not None:
        return _local().spark_session(root)
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


def read_table(spark: SparkSession, name: str) -> DataFrame:
    root = local_dir()
    if root is not None:
        df = _local().read_table(spark, root, name)
    else:
        df = spark.table(name) if spark.catalog.tableExists(name) else None
    if df is None:
        raise JobError(f"Table {name} does not exist. Check the table parameter, or run the job that writes it first.")
    return df


def write_table(df: DataFrame, name: str, mode: str = "append") -> None:
    root = local_dir()
    if root is not None:
        _local().write_table(df, root, name, mode)
    else:
        df.write.mode(mode).option("mergeSchema", "true").saveAsTable(name)


def configure_mlflow() -> None:
    """Point MLflow at Unity Catalog on Databricks, at the SQLite registry locally."""
    import mlflow

    root = local_dir()
    uri = _local().registry_uri(root) if root is not None else None
    mlflow.set_tracking_uri(uri or "databricks")
    mlflow.set_registry_uri(uri or "databricks-uc")


def use_experiment(name: str) -> None:
    """Log to experiment ``name``; locally its artifacts live in the local state folder."""
    import mlflow

    root = local_dir()
    if root is not None and mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=_local().artifact_location(root))
    mlflow.set_experiment(name)


def set_task_value(key: str, value: object) -> None:
    """Publish a task value that later tasks read as ``{% raw %}{{tasks.<task>.values.<key>}}{% endraw %}``."""
    text = str(value)
    if local_dir() is not None:
        _local().set_task_value(key, text)
        return
    try:
        from databricks.sdk.runtime import dbutils

        dbutils.jobs.taskValues.set(key=key, value=text)
    except Exception as error:  # not in a Databricks job: say so, don't fail the step
        print(f"task value {key}={text} not published ({error.__class__.__name__}: not in a job run)")


{%- if cookiecutter.include_feature_store %}


def feature_engineering():
    """The feature-engineering client's module (``FeatureEngineeringClient``, ``FeatureLookup``).

    ``databricks.feature_engineering`` on Databricks; locally its stand-in,
    ``mlops_local.feature_engineering``, with the same calls on the local tables and registry.
    """
    if local_dir() is not None:
        _local()
        from mlops_local import feature_engineering

        return feature_engineering
    import databricks.feature_engineering

    return databricks.feature_engineering


def enable_change_data_feed(name: str) -> None:
    """Turn on Change Data Feed for table ``name`` (publishing it to an online store needs it)."""
    if local_dir() is not None:
        _local()
        from mlops_local import feature_engineering

        feature_engineering.enable_change_data_feed(name)
        return
    get_spark().sql(f"ALTER TABLE {name} SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
{%- endif %}


def workspace_client():
    """A ``databricks-sdk`` client: the job's identity on Databricks, the stand-in workspace locally."""
    root = local_dir()
    if root is not None:
        return _local().workspace_client(root)
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()
