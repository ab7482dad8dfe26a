"""Where the jobs run: Databricks, or this machine.

On Databricks the jobs use the cluster's Spark session, Unity Catalog tables, the
``databricks-uc`` model registry and ``dbutils`` task values. When the environment
variable ``MLOPS_LOCAL_DIR`` names a folder (the local runner sets it), the same code
uses a local Spark session, Parquet tables under that folder, an MLflow SQLite
registry and the local runner's task values. Nothing else in the package needs to know
which of the two it is.

Local runs are tuned for small data on a laptop: a Spark session with few partitions, no
UI and a JVM that starts fast, native thread pools of one thread (Spark's tasks already
use the cores), and a cache (``MLOPS_LOCAL_CACHE``, default ``~/.cache/mlops-local``) of
what is slow to make and never changes: the generated sample table and an empty registry.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOCAL_DIR_ENV = "MLOPS_LOCAL_DIR"
CACHE_DIR_ENV = "MLOPS_LOCAL_CACHE"
# What batch inference's spark_udf imports in a Spark Python worker (see start_spark_early).
SCORING_MODULES = ("mlflow.pyfunc", "mlflow.sklearn", "sklearn.ensemble")

# Set by the local runner while a task runs; receives (key, value) of task values.
task_value_sink: Callable[[str, str], None] | None = None


class JobError(RuntimeError):
    """A failure with a message meant for the person running the job."""


def local_dir() -> Path | None:
    value = os.environ.get(LOCAL_DIR_ENV)
    return Path(value).resolve() if value else None


def is_local() -> bool:
    return local_dir() is not None


def cache_dir() -> Path:
    """Where local runs keep reusable artifacts (``MLOPS_LOCAL_CACHE``, else the user's cache folder)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).resolve()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops-local"


def cached(key: str, build: Callable[[Path], None]) -> Path:
    """The folder ``cache_dir()/key``, made once by ``build(folder)``.

    ``key`` must name everything the content depends on. ``build`` writes into a private
    temporary folder that is renamed into place when complete, so a crash or a concurrent
    run never leaves a half-written entry.
    """
    final = cache_dir() / key
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        build(partial)
        try:
            partial.rename(final)
        except OSError:
            if not final.is_dir():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def limit_native_threads() -> None:
    """Locally, one thread per native pool (OpenMP, BLAS) unless OMP_NUM_THREADS says otherwise.

    scikit-learn's OpenMP threads compete with Spark's tasks for the same cores; on a small
    machine that makes a fit of seconds take tens of seconds. Spark's Python workers inherit
    the environment variable.
    """
    if "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it nothing has loaded OpenMP yet
        return
    threadpool_limits(1)


# --- Spark -------------------------------------------------------------------------


def get_spark() -> SparkSession:
    """The active Spark session; locally, one configured for this project's folder."""
    from pyspark.sql import SparkSession

    _early_ready.wait()
    active = SparkSession.getActiveSession() or _early_session
    if active is not None:
        return active
    root = local_dir()
    if root is None:
        return SparkSession.builder.getOrCreate()
    return _local_session(root)


def _local_session(root: Path) -> SparkSession:
    from pyspark.sql import SparkSession

    # Spark's Python workers must run this interpreter, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    limit_native_threads()
    spark = (
        SparkSession.builder.master(os.environ.get("MLOPS_SPARK_MASTER", "local[2]"))
        .appName("mlops-local")
        # Small data on a few cores: a JVM that starts fast (the C1 compiler only, a simple
        # collector), two shuffle partitions, and small files read as one partition.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.files.minPartitionNum", "1")
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


_early_ready = threading.Event()  # set unless a session is being started in the background
_early_ready.set()
_early_session: SparkSession | None = None


def start_spark_early(warm_up_modules: tuple[str, ...] = ()) -> None:
    """Locally, start the Spark session in the background; ``get_spark`` waits for it.

    The JVM then starts while this process imports its libraries. ``warm_up_modules`` go
    to ``warm_up_python_worker``. A failure here is not raised: ``get_spark`` then starts
    the session itself and reports the error.
    """
    from pyspark.sql import SparkSession

    root = local_dir()
    if root is None or not _early_ready.is_set() or SparkSession.getActiveSession() or _early_session:
        return
    _early_ready.clear()

    def start() -> None:
        global _early_session
        try:
            _early_session = _local_session(root)
        except Exception:
            return
        finally:
            _early_ready.set()

    threading.Thread(target=start, name="spark-early-start", daemon=True).start()
    if warm_up_modules:
        warm_up_python_worker(warm_up_modules)


def warm_up_python_worker(modules: tuple[str, ...]) -> None:
    """Locally, import ``modules`` in a Spark Python worker, in the background.

    The first job with a Python UDF (e.g. ``spark_udf`` scoring) otherwise waits while its
    worker imports MLflow and the model's libraries; Spark reuses this worker instead.
    """
    if local_dir() is None:
        return

    def load(batches):
        import importlib

        for name in modules:
            importlib.import_module(name)
        yield from batches

    def run() -> None:
        try:  # a pandas UDF, so the worker is one that later pandas UDFs reuse
            get_spark().range(1, numPartitions=1).mapInPandas(load, "id long").collect()
        except Exception:
            pass

    threading.Thread(target=run, name="python-worker-warm-up", daemon=True).start()


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
    if is_local():
        _ensure_stand_in(spark, name)
    if not table_exists(spark, name):
        raise JobError(f"Table {name} does not exist. Check the table parameter, or run the job that writes it first.")
    if is_local():
        return spark.read.parquet(str(_local_table_path(name)))
    return spark.table(name)


def _ensure_stand_in(spark: SparkSession, name: str) -> None:
    """Locally, make ``model.SOURCE_TABLE`` from ``model.stand_in_table`` the first time it is read.

    The rows are cached under a key made of ``model.py`` and the Spark version, so a change
    to the stand-in makes a new table.
    """
    from . import model

    if name != model.SOURCE_TABLE or table_exists(spark, name):
        return
    import hashlib
    import inspect

    import pyspark

    made_of = inspect.getsource(model) + pyspark.__version__
    key = "stand-in-" + hashlib.sha256(made_of.encode()).hexdigest()[:16]

    def generate(folder: Path) -> None:
        print(f"Generating the local stand-in for {name} (model.stand_in_table) into {folder.parent}")
        model.stand_in_table(spark).write.parquet(str(folder))

    copy_local_table(cached(key, generate), name)


def copy_local_table(folder: Path, name: str) -> None:
    """Locally, make table ``name`` a copy of the Parquet table in ``folder``."""
    path = _local_table_path(name)
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(folder, path)


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
    db = root / "mlflow.db"
    if not db.exists():
        _copy_empty_registry(db)
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def _copy_empty_registry(db: Path) -> None:
    """Start ``db`` from a cached empty registry of this MLflow version.

    Creating the tables runs every MLflow schema migration, which takes seconds; a copy of
    an empty, fully migrated database is the same thing at once. MLflow checks the schema
    version whenever it opens the database.
    """
    import mlflow

    def build(folder: Path) -> None:
        folder.mkdir(parents=True)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()

    empty = cached(f"mlflow-{mlflow.__version__}-registry", build) / "mlflow.db"
    partial = db.with_name(db.name + ".partial")
    partial.unlink(missing_ok=True)
    with closing(sqlite3.connect(empty)) as source, closing(sqlite3.connect(partial)) as target:
        source.backup(target)
        # The Default experiment keeps its artifacts in this folder, not in the cache.
        with target:
            target.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                ((db.parent / "mlartifacts" / "0").as_uri(),),
            )
    partial.replace(db)


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
    if is_local():  # run by hand or from a test: there is no job run to publish to
        print(f"task value {key}={text} not published (not in a job run)")
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


def local_record(kind: str, name: str) -> Path:
    """Locally, the file where a job records the workspace object ``name`` it would manage."""
    folder = local_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.json"


def read_local_record(kind: str, name: str) -> dict | None:
    """The record ``local_record`` names, or None when the object was never recorded."""
    path = local_record(kind, name)
    return json.loads(path.read_text()) if path.exists() else None
