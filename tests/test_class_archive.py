"""Spark's class-data archive (src/mlops_local/class_archive.py): built once, used, never a hazard.

The local runner starts its JVM with Spark's classes from an AppCDS archive once one is built.
These tests run a baked project's session start in fresh processes with a cache folder of
their own: the first start builds the archive in the background, the next one maps it, and an
archive the JVM cannot start with (here: truncated, which crashes a JVM that maps it) is
deleted and the session starts without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bake import project_env

START = """
from {slug}.runtime import get_spark
spark = get_spark()
assert spark.range(10).count() == 10
print("OPTIONS", spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
"""


def start_session(project: Path, cache: Path, tmp_path: Path, **extra: str) -> str:
    env = {**project_env(project, tmp_path / "state"), "MLOPS_LOCAL_CACHE": str(cache), **extra}
    result = subprocess.run(
        [sys.executable, "-c", START.format(slug=project.name)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return next(line for line in result.stdout.splitlines() if line.startswith("OPTIONS"))


def wait_for_archive(cache: Path, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        built = list(cache.glob("spark-classes-*/spark.jsa"))
        if built and not list(cache.glob(".spark-classes-*.building")):
            return built[0]
        time.sleep(1)
    raise AssertionError(f"no class archive in {cache} after {timeout:.0f}s: {sorted(p.name for p in cache.iterdir())}")


@pytest.mark.slow
def test_the_archive_is_built_once_used_and_dropped_when_the_jvm_cannot_use_it(baked, tmp_path):
    project = baked()
    cache = tmp_path / "cache"

    first = start_session(project, cache, tmp_path)
    assert "SharedArchiveFile" not in first  # none yet: this start builds one in the background
    archive = wait_for_archive(cache)
    assert archive.stat().st_size > 10_000_000  # Spark's classes, not an empty file

    second = start_session(project, cache, tmp_path)
    assert f"-XX:SharedArchiveFile={archive}" in second

    with archive.open("r+b") as file:  # a JVM that maps a truncated archive dies at start
        file.truncate(1_000_000)
    third = start_session(project, cache, tmp_path, MLOPS_SPARK_CLASS_ARCHIVE="1")
    assert "SharedArchiveFile" not in third
    assert not archive.parent.exists()


def test_switched_off_no_archive_is_built(baked, tmp_path, monkeypatch):
    project = baked()
    monkeypatch.syspath_prepend(str(project / "src"))
    monkeypatch.setenv("MLOPS_LOCAL_CACHE", str(tmp_path))
    monkeypatch.setenv("MLOPS_SPARK_CLASS_ARCHIVE", "0")
    from mlops_local import class_archive

    assert class_archive.java_options("-XX:+UseSerialGC") == ("-XX:+UseSerialGC", None)
    assert list(tmp_path.iterdir()) == []


def test_pyspark_installed_again_gets_an_archive_of_its_own(baked, tmp_path, monkeypatch):
    """The JVM ignores an archive once a jar's size or time differs from when it was written
    (JDK 17, ``SharedClassPathEntry::validate``: "A jar file is not the one used while building
    the shared archive file"), so a reinstalled PySpark at the same path needs a new key."""
    project = baked()
    monkeypatch.syspath_prepend(str(project / "src"))
    from mlops_local import class_archive

    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"classes")
    (jars / "README").write_text("not a jar")
    signature = class_archive.jars_signature(jars)
    assert signature == class_archive.jars_signature(jars)

    (jars / "README").write_text("still not a jar")
    assert class_archive.jars_signature(jars) == signature
    os.utime(jars / "spark-core.jar", (1_000_000_000, 1_000_000_000))  # installed again: another time
    retimed = class_archive.jars_signature(jars)
    assert retimed != signature
    (jars / "spark-core.jar").write_bytes(b"other classes")
    os.utime(jars / "spark-core.jar", (1_000_000_000, 1_000_000_000))
    assert class_archive.jars_signature(jars) not in (signature, retimed)

    monkeypatch.setattr(class_archive, "jars_signature", lambda folder: signature)
    before = class_archive.key("-XX:+UseSerialGC")
    monkeypatch.setattr(class_archive, "jars_signature", lambda folder: retimed)
    assert before is not None and class_archive.key("-XX:+UseSerialGC") != before
