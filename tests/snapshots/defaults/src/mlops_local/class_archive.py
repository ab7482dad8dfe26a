"""A class-data archive of Spark's JVM classes, so a local Spark session starts sooner.

Most of a local session's start is the JVM loading and verifying the classes Spark needs.
Java's application class-data sharing (AppCDS, JDK 13 and later) saves them once:
``-XX:ArchiveClassesAtExit=FILE`` writes the classes a JVM loaded into FILE when it exits,
and ``-XX:SharedArchiveFile=FILE`` maps them at the next start. On a 2-core machine this
takes about a third off a session's start and first job.

The archive belongs to one JVM, one PySpark installation (its jars, as the JVM checks them)
and one set of JVM options, so it is cached under a key made of all three
(``environment.cached``), about 140 MB each, built once per machine and virtual environment:

- the first session without an archive starts as before and builds one in a separate
  process, in the background (``python -m mlops_local.class_archive`` builds it in the
  foreground);
- a JVM that cannot use the archive ignores it; one that fails to start with it is started
  again without it, and the archive is deleted;
- ``MLOPS_SPARK_CLASS_ARCHIVE=0`` turns it off.

This is a local-mode setting only: on Databricks the cluster's JVM is already running.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .environment import cache_dir, cached

SWITCH_ENV = "MLOPS_SPARK_CLASS_ARCHIVE"
ARCHIVE = "spark.jsa"
# Quiet: a JVM that cannot use the archive (another Java, a moved virtual environment) says so
# on stderr at every start, then runs without it.
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
_BUILD_TIMEOUT = 15 * 60  # seconds; an older build marker is a build that died
# What a build runs, so the archive holds the classes of the jobs' usual work: Arrow
# conversions both ways, Parquet, a shuffle, a join, a window and a pandas UDF.
_WORKLOAD = """
import pandas as pd
from pyspark.sql import Window, functions as F
frame = spark.createDataFrame(pd.DataFrame({"k": [1, 2, 3] * 50, "x": [float(i) for i in range(150)]}))
frame.write.mode("overwrite").parquet(folder + "/table")
table = spark.read.parquet(folder + "/table")
joined = table.groupBy("k").agg(F.avg("x").alias("mean")).join(table, "k")
ranked = joined.withColumn("rank", F.row_number().over(Window.partitionBy("k").orderBy("x")))
plus_one = F.pandas_udf(lambda s: s + 1.0, "double")
ranked.withColumn("y", plus_one("x")).filter(F.col("rank") < 3).toPandas()
"""


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1") != "0"


def _java() -> Path | None:
    """The java that spark-submit runs: ``$JAVA_HOME/bin/java``, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def key(base_options: str) -> str | None:
    """The cache key of the archive for this JVM, PySpark installation and JVM options."""
    import pyspark

    java = _java()
    if java is None:
        return None
    release = java.parents[1] / "release"
    spark_home = Path(pyspark.__file__).resolve().parent
    parts = [
        str(java),
        release.read_text() if release.is_file() else str(java.stat().st_mtime_ns),
        pyspark.__version__,
        str(spark_home),
        jars_signature(spark_home / "jars"),
        base_options,
    ]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"spark-classes-{pyspark.__version__}-{digest}"


def jars_signature(folder: Path) -> str:
    """Name, size and modification time (whole seconds) of each jar in ``folder``.

    The JVM maps an archive only if every jar of the class path has the size and time it had
    when the archive was written; otherwise it quietly starts without it. PySpark installed
    again at the same path (``pip install --force-reinstall``, a recreated virtual environment)
    changes the times, so it gets an archive of its own.
    """
    stats = [(jar.name, jar.stat()) for jar in sorted(folder.glob("*.jar"))] if folder.is_dir() else []
    return "\n".join(f"{name} {stat.st_size} {int(stat.st_mtime)}" for name, stat in stats)


def archive(base_options: str) -> Path | None:
    """The archive for these options if it is built; otherwise starts its build and returns None."""
    if not enabled():
        return None
    name = key(base_options)
    if name is None:
        return None
    path = cache_dir() / name / ARCHIVE
    if path.is_file():
        return path
    _build_in_background(base_options, name)
    return None


def discard(path: Path) -> None:
    """Delete an archive a JVM could not start with; the next session builds a new one."""
    shutil.rmtree(path.parent, ignore_errors=True)


def _marker(name: str) -> Path:
    return cache_dir() / f".{name}.building"


def _build_in_background(base_options: str, name: str) -> None:
    marker = _marker(name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        if time.time() - marker.stat().st_mtime < _BUILD_TIMEOUT:
            return  # another process is building it
        marker.unlink()
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    package_parent = str(Path(__file__).resolve().parents[1])
    code = f"import sys; sys.path.insert(0, {package_parent!r}); from mlops_local.class_archive import main; main()"
    subprocess.Popen(
        [sys.executable, "-c", code, f"--options={base_options}", f"--marker={marker}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this process: a short run still leaves an archive behind
    )


def build(base_options: str) -> Path | None:
    """Build the archive for these options (if it is not built yet) and return it."""
    name = key(base_options)
    if name is None:
        return None
    return cached(name, lambda folder: _record(folder, base_options)) / ARCHIVE


def _record(folder: Path, base_options: str) -> None:
    """Run a JVM that writes the classes it loaded into ``folder/ARCHIVE`` as it exits."""
    folder.mkdir(parents=True)
    target = folder / ARCHIVE
    code = (
        "import sys\n"
        "from pyspark import SparkContext\n"
        "from pyspark.sql import SparkSession\n"
        "folder, options = sys.argv[1], sys.argv[2]\n"
        "spark = (SparkSession.builder.master('local[2]')\n"
        "    .config('spark.driver.extraJavaOptions', options)\n"
        "    .config('spark.ui.enabled', 'false').config('spark.sql.shuffle.partitions', '2')\n"
        "    .config('spark.sql.execution.arrow.pyspark.enabled', 'true').getOrCreate())\n"
        f"{_WORKLOAD}"
        "spark.stop()\n"
        "gateway = SparkContext._gateway.proc\n"
        "gateway.stdin.close()  # the gateway exits at end of input, writing the archive\n"
        "sys.exit(gateway.wait())\n"
    )
    options = f"{base_options} -XX:ArchiveClassesAtExit={target} {_QUIET}"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    subprocess.run(
        [sys.executable, "-c", code, str(folder), options],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=_BUILD_TIMEOUT,
    )
    shutil.rmtree(folder / "table", ignore_errors=True)
    if not target.is_file() or target.stat().st_size == 0:
        raise RuntimeError(f"the JVM wrote no class archive to {target}")


def java_options(base_options: str) -> tuple[str, Path | None]:
    """``base_options`` with the archive when there is one, and the archive (None without)."""
    path = archive(base_options)
    if path is None:
        return base_options, None
    # A JVM that dies mapping a damaged archive writes its crash report to the temporary folder,
    # not into the project; the session is then started without the archive.
    crash_report = Path(tempfile.gettempdir()) / "mlops-local-jvm-%p.log"
    return f"{base_options} -XX:SharedArchiveFile={path} -XX:ErrorFile={crash_report} {_QUIET}", path


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .environment import SPARK_JAVA_OPTIONS

    parser = argparse.ArgumentParser(description="Build the class-data archive of local Spark sessions.")
    parser.add_argument("--options", default=SPARK_JAVA_OPTIONS, help="the JVM options the sessions use")
    parser.add_argument("--marker", type=Path, help="the build marker to remove when done (background builds)")
    args = parser.parse_args(argv)
    try:
        path = build(args.options)
    finally:
        if args.marker:
            args.marker.unlink(missing_ok=True)
    print(f"Spark's class archive: {path}" if path else "No java found: no class archive.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
