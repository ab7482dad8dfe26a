"""Where the jobs run: Databricks, or this machine.

On Databricks the jobs use the cluster's Spark session, Unity Catalog tables, the
``databricks-uc`` model registry and ``dbutils`` task values. When the environment
variable ``MLOPS_LOCAL_DIR`` names a folder (the local runner sets it), the same code
uses a local Spark session, Parquet tables under that folder, an MLflow SQLite
registry and the local runner's task values. Nothing else in the package needs to know
which of the two it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOCAL_DIR_ENV = "MLOPS_LOCAL_DIR"

# Set by the local runner while a task runs; receives (key, value) of task values.
task_value_sink: Callable[[str, str], None] | None = None


class JobError(RuntimeError):
    """A failure with a message meant for the person running the job."""


def local_dir() -> Path | None:
    value = os.environ.get(LOCAL_DIR_ENV)
    return Path(value).resolve() if value else None


def is_local() -> bool:
    return local_dir() is not None


# --- Spark -------------------------------------------------------------------------


def get_spark() -> SparkSession:
    """The active Spark session; locally, one configured for this project's folder."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    root = local_dir()
    if root is None:
        return SparkSession.builder.getOrCreate()
    # Spark's Python workers must run this interpreter, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master(os.environ.get("MLOPS_SPARK_MASTER", "local[2]"))
        .appName("mlops-local")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(root / "spark-warehouse"))
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- Tables ------------------------------------------------------------------------


def _local_table_path(name: str) -> Path:
    parts = name.split(".")
    if len(parts) != 3 or not all(parts):
        raise JobError(f"{name!r} is not a table name of the form <catalog>.<schema>.<table>")
    return local_dir() / "warehouse" / Path(*parts)


def table_exists(spark: SparkSession, name: str) -> bool:
    if is_local():
        return (_local_table_path(name) / "_SUCCESS").exists()
    return spark.catalog.tableExists(name)


def read_table(spark: SparkSession, name: str) -> DataFrame:
    if not table_exists(spark, name):
        raise JobError(f"Table {name} does not exist. Check the table parameter, or run the job that writes it first.")
    if is_local():
        return spark.read.parquet(str(_local_table_path(name)))
    return spark.table(name)


def write_table(df: DataFrame, name: str, mode: str = "append") -> None:
    if is_local():
        df.write.mode(mode).parquet(str(_local_table_path(name)))
    else:
        df.write.mode(mode).option("mergeSchema", "true").saveAsTable(name)


# --- MLflow ------------------------------------------------------------------------


def configure_mlflow() -> None:
    """Point MLflow at Unity Catalog on Databricks, at the SQLite registry locally."""
    import mlflow

    root = local_dir()
    if root is None:
        mlflow.set_tracking_uri("databricks")
        mlflow.set_registry_uri("databricks-uc")
        return
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def use_experiment(name: str) -> None:
    """Log to experiment ``name``; locally its artifacts live in the project's folder."""
    import mlflow

    root = local_dir()
    if root is not None and mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=(root / "mlartifacts").as_uri())
    mlflow.set_experiment(name)


# --- Task values -------------------------------------------------------------------


def set_task_value(key: str, value: object) -> None:
    """Publish a task value that later tasks read as ``{{tasks.<task>.values.<key>}}``."""
    text = str(value)
    if task_value_sink is not None:
        task_value_sink(key, text)
        return
    try:
        from databricks.sdk.runtime import dbutils

        dbutils.jobs.taskValues.set(key=key, value=text)
    except Exception as error:  # not in a Databricks job: say so, don't fail the step
        print(f"task value {key}={text} not published ({error.__class__.__name__}: not in a job run)")


# --- Workspace objects the jobs manage (serving endpoint, quality monitor) ------------


def workspace_client():
    """A ``databricks-sdk`` client: the job's identity on Databricks, your CLI profile elsewhere."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def local_records(kind: str) -> Path:
    """Locally, the folder where a job records the workspace object it would manage."""
    folder = local_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder
