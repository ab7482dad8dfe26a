"""The local side of the project's ``runtime`` module: Spark, tables, registry, task values.

The job package's ``runtime`` hands each call here when ``MLOPS_LOCAL_DIR`` names a folder
(the local runner and the tests set it), so the jobs never branch on where they run:

- Spark: a local session tuned for small data on a laptop (few partitions, no UI, a JVM
  that starts fast, native thread pools of one thread since Spark's tasks already use the
  cores, Spark's classes from a class-data archive: ``class_archive.py``), which can start
  in the background while the job imports its libraries;
- tables: Parquet folders under ``<local state>/warehouse/<catalog>/<schema>/<table>``; a
  source table the state lacks is made from the project's ``stand_in.py`` (development only,
  beside databricks.yml) the first time it is read;
- the registry: an MLflow SQLite database in the state folder;
- task values: handed to the local runner (``task_value_sink``);
- the workspace's APIs: the stand-in workspace of ``workspace.py``.

What is slow to make and never changes (the stand-in table, an empty registry, Spark's class
archive) is cached in ``MLOPS_LOCAL_CACHE`` (default ``~/.cache/mlops-local``).
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import inspect
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

from .project import PROJECT_ENV, find_project_dir, project_module

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CACHE_DIR_ENV = "MLOPS_LOCAL_CACHE"

# Set by the local runner while a task runs; receives (key, value) of task values.
task_value_sink: Callable[[str, str], None] | None = None


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
    """One thread per native pool (OpenMP, BLAS) unless OMP_NUM_THREADS says otherwise.

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


def freeze_heap(collect: bool = True) -> None:
    """Leave every object alive now out of Python's later garbage collections (``gc.freeze``).

    Most of them are the libraries the jobs and tests import (MLflow, scikit-learn, pandas,
    PySpark, the SDK): objects that live until exit, yet every full collection walks them
    again, and the interpreter once more as it exits. Measured on a 2-core machine, that was
    about 1.2 s of collections in a local scenario and 1.1-1.4 s of exit. ``collect`` frees
    the garbage there is first, so none of it is kept; at exit there is no need. Local runs
    and tests only: nothing in the job package calls this.
    """
    if collect:
        gc.collect()
    gc.freeze()


# --- Spark -------------------------------------------------------------------------

# The local JVM: the C1 compiler only and a simple collector start fastest on small data.
SPARK_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def spark_session(root: Path) -> SparkSession:
    """The local session: the one started in the background if any, else a new one."""
    from pyspark.sql import SparkSession

    _early_ready.wait()
    active = SparkSession.getActiveSession() or _early_session
    return active if active is not None else _new_session(root)


def _new_session(root: Path) -> SparkSession:
    from pyspark.errors import PySparkRuntimeError

    from . import class_archive

    # Spark's Python workers must run this interpreter, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    limit_native_threads()
    java_options, archive = class_archive.java_options(SPARK_JAVA_OPTIONS)
    try:
        return _start_session(root, java_options)
    except PySparkRuntimeError:
        if archive is None:
            raise
        class_archive.discard(archive)  # a JVM that cannot start with it: start without it
        return _start_session(root, SPARK_JAVA_OPTIONS)


def _start_session(root: Path, java_options: str) -> SparkSession:
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(os.environ.get("MLOPS_SPARK_MASTER", "local[2]"))
        .appName("mlops-local")
        # Small data on a few cores: a JVM that starts fast (SPARK_JAVA_OPTIONS, and Spark's
        # classes from a class-data archive once one is built), two shuffle partitions, and
        # small files read as one partition.
        .config("spark.driver.extraJavaOptions", java_options)
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


def scoring_modules() -> tuple[str, ...]:
    """What scoring with ``spark_udf`` imports in a Spark Python worker (``model.SCORING_IMPORTS``)."""
    return tuple(project_module("model").SCORING_IMPORTS)


def start_spark_early(root: Path, warm_up_modules: tuple[str, ...] = ()) -> None:
    """Start the local Spark session in the background; ``spark_session`` waits for it.

    The JVM then starts while this process imports its libraries, and once started runs
    ``warm_up_jvm``'s query while the imports go on. ``warm_up_modules`` go to
    ``warm_up_python_worker`` (also when the session is already started or starting).
    A failure here is not raised: ``spark_session`` then starts the session itself and
    reports the error.
    """
    from pyspark.sql import SparkSession

    if _early_ready.is_set() and not SparkSession.getActiveSession() and not _early_session:
        _early_ready.clear()

        def start() -> None:
            global _early_session
            try:
                _early_session = _new_session(root)
            except Exception:
                return
            finally:
                _early_ready.set()
            warm_up_jvm(_early_session)

        threading.Thread(target=start, name="spark-early-start", daemon=True).start()
    if warm_up_modules:
        warm_up_python_worker(root, warm_up_modules)


# What a first query of a local run does in the JVM: parse, plan, generate code, shuffle, aggregate.
WARM_UP_QUERY = (
    "SELECT k, count(*) AS n, avg(v) AS mean, max(t) AS latest FROM ("
    " SELECT id % 7 AS k, id * 1.5 AS v, timestamp_seconds(id) AS t, sha2(CAST(id AS STRING), 256) AS h"
    " FROM range(2000)) WHERE h IS NOT NULL GROUP BY k ORDER BY k"
)


def warm_up_jvm(spark: SparkSession) -> int:
    """Run ``WARM_UP_QUERY`` in the JVM; returns its row count (7), or 0 when it failed.

    The JVM compiles and loads what a run's first Spark jobs need while the main thread still
    imports its libraries, instead of after. Only py4j calls on JVM objects: no Python module
    is imported here, so this thread never takes an import lock that the main thread holds
    (docs/decisions.md: a background import deadlocked).
    """
    try:
        return spark._jsparkSession.sql(WARM_UP_QUERY).collectAsList().size()
    except Exception:  # a stopped session, or the interpreter exiting: nothing to warm
        return 0


def warm_up_python_worker(root: Path, modules: tuple[str, ...]) -> None:
    """Import ``modules`` in a Spark Python worker, in the background.

    The first job with a Python UDF (e.g. ``spark_udf`` scoring) otherwise waits while its
    worker imports MLflow and the model's libraries; Spark reuses this worker instead.
    """

    def load(batches):
        import importlib

        for name in modules:
            importlib.import_module(name)
        yield from batches

    def run() -> None:
        try:  # a pandas UDF, so the worker is one that later pandas UDFs reuse
            spark_session(root).range(1, numPartitions=1).mapInPandas(load, "id long").collect()
        except Exception:
            pass

    threading.Thread(target=run, name="python-worker-warm-up", daemon=True).start()


# --- Tables ------------------------------------------------------------------------


def table_path(root: Path, name: str) -> Path:
    parts = name.split(".")
    if len(parts) != 3 or not all(parts):
        raise project_module("runtime").JobError(f"{name!r} is not a table name of the form <catalog>.<schema>.<table>")
    return root / "warehouse" / Path(*parts)


def table_exists(root: Path, name: str) -> bool:
    return (table_path(root, name) / "_SUCCESS").exists()


# A table's schema, kept beside its Parquet files (Spark skips names that start with "_").
# Reading with it skips Spark's schema inference, a Spark job per read (ParquetFileFormat.
# inferSchema reads a file's footer in a task), and makes the schema the table's own rather
# than that of whichever file Spark lists first.
SCHEMA_FILE = "_schema.json"


def read_table(spark: SparkSession, root: Path, name: str) -> DataFrame | None:
    """Table ``name``, or None when it does not exist; a missing source table is made from its stand-in."""
    ensure_stand_in(spark, root, name)
    if not table_exists(root, name):
        return None
    path = table_path(root, name)
    schema = stored_schema(path)
    return (spark.read.schema(schema) if schema is not None else spark.read).parquet(str(path))


def write_table(df: DataFrame, root: Path, name: str, mode: str) -> None:
    """Write ``df`` to table ``name``; an append adds the columns ``df`` brings to the table's
    schema, as Databricks' ``mergeSchema`` does (``runtime.write_table``)."""
    path = table_path(root, name)
    before = None
    if mode == "append" and table_exists(root, name):
        before = stored_schema(path)
        if before is None:  # a table written before schemas were kept: as Spark infers it
            before = df.sparkSession.read.parquet(str(path)).schema
    df.write.mode(mode).parquet(str(path))
    store_schema(path, df.schema if before is None else merged_schema(before, df.schema))


def stored_schema(path: Path):
    """The schema ``store_schema`` kept for the table in ``path``, or None (Spark then infers it)."""
    from pyspark.sql.types import StructType

    try:
        return StructType.fromJson(json.loads((path / SCHEMA_FILE).read_text()))
    except FileNotFoundError:
        return None


def store_schema(path: Path, schema) -> None:
    (path / SCHEMA_FILE).write_text(schema.json())


def merged_schema(table, added):
    """``table``'s columns, then those of ``added`` it lacks."""
    from pyspark.sql.types import StructType

    return StructType([*table.fields, *(f for f in added.fields if f.name not in table.fieldNames())])


def copy_table(root: Path, folder: Path, name: str) -> None:
    """Make table ``name`` a copy of the Parquet table in ``folder``."""
    path = table_path(root, name)
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(folder, path)


STAND_IN_FILE = "stand_in.py"


def stand_in_module(project_dir: Path | None = None):
    """The project's ``stand_in.py`` (development only, beside databricks.yml), or None without one."""
    try:
        path = find_project_dir(project_dir or os.environ.get(PROJECT_ENV)) / STAND_IN_FILE
    except FileNotFoundError:
        return None
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("mlops_local_stand_in", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_stand_in(spark: SparkSession, root: Path, name: str, project_dir: Path | None = None) -> bool:
    """Make table ``name`` in ``root`` from the project's ``stand_in.stand_in_table`` when it is missing.

    True when the table exists afterwards. The project is the nearest folder with a
    databricks.yml from ``project_dir`` (default: ``MLOPS_LOCAL_PROJECT``, else the working
    directory). The rows are cached
    under a key made of ``stand_in.py``, the table's own name, the Spark version and the
    schema file's name, so a change to the file makes a new table.
    """
    import pyspark

    if table_exists(root, name):
        return True
    table_path(root, name)  # refuses a name that is not <catalog>.<schema>.<table>
    stand_in = stand_in_module(project_dir)
    if stand_in is None or stand_in.stand_in_table(spark, name) is None:
        return False
    made_of = inspect.getsource(stand_in) + name.rsplit(".", 1)[-1] + pyspark.__version__ + SCHEMA_FILE
    key = "stand-in-" + hashlib.sha256(made_of.encode()).hexdigest()[:16]

    def generate(folder: Path) -> None:
        print(f"Generating the local stand-in for {name} (stand_in.py) into {folder.parent}")
        rows = stand_in.stand_in_table(spark, name)
        rows.write.parquet(str(folder))
        store_schema(folder, rows.schema)

    copy_table(root, cached(key, generate), name)
    return True


# --- MLflow ------------------------------------------------------------------------


def registry_uri(root: Path) -> str:
    """The SQLite registry of ``root``, started from a cached empty one the first time."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    if not db.exists():
        _copy_empty_registry(db)
    return f"sqlite:///{db}"


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


def artifact_location(root: Path) -> str:
    return (root / "mlartifacts").as_uri()


# --- Task values and the workspace -------------------------------------------------


def set_task_value(key: str, text: str) -> None:
    if task_value_sink is not None:
        task_value_sink(key, text)
    else:  # run by hand or from a test: there is no job run to publish to
        print(f"task value {key}={text} not published (not in a job run)")


# Set by a compute that runs the job wheel against a workspace of its own (the template's
# fake workspace does): the job's calls to the workspace's APIs go there, as the job's identity.
WORKSPACE_HOST_ENV, WORKSPACE_TOKEN_ENV = "MLOPS_LOCAL_WORKSPACE_HOST", "MLOPS_LOCAL_WORKSPACE_TOKEN"


def workspace_client(root: Path):
    """A ``WorkspaceClient`` of the stand-in workspace that keeps its objects in ``root``
    (or of the workspace ``MLOPS_LOCAL_WORKSPACE_HOST`` names, when the compute running the
    job sets it)."""
    host = os.environ.get(WORKSPACE_HOST_ENV)
    if host:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        token = os.environ.get(WORKSPACE_TOKEN_ENV, "")
        return WorkspaceClient(config=Config(host=host, token=token, auth_type="pat", retry_timeout_seconds=60))
    from .workspace import local_client

    return local_client(root)
