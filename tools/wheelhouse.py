"""A wheel of PySpark for generated projects' ``uv sync``, built once per machine.

PySpark is published on PyPI as a source distribution only, and uv keeps the wheel it builds
from it per cached *revision* of that download. Against the package index this project's
machines use, every ``uv sync`` of a new project fetched a new revision and built PySpark
again: about a minute and 2 GB of uv cache per project. The template's tests and benchmark
therefore give uv this folder as a find-links location (``UV_FIND_LINKS``): a wheel of the
same pinned version, built once from the same source distribution (pip's wheel cache usually
has it from installing the template's environment). A team's machine builds PySpark once
and reuses uv's cache as usual.

    python tools/wheelhouse.py     prints the folder, building the wheel if needed
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def pyspark_wheelhouse() -> Path:
    """The folder holding ``pyspark-<version>-py2.py3-none-any.whl`` of the environment's PySpark."""
    version = importlib.metadata.version("pyspark")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "cookiecutter-databricks-mlops" / f"wheelhouse-pyspark-{version}"
    if any(folder.glob(f"pyspark-{version}-*.whl")):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        print(f"Building a wheel of pyspark=={version} once for the generated projects' uv sync...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", f"pyspark=={version}", "-w", str(work)],
            check=True,
        )
        try:
            work.rename(folder)
        except OSError:  # another process finished first
            if not any(folder.glob(f"pyspark-{version}-*.whl")):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def uv_find_links(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the wheelhouse added to ``UV_FIND_LINKS``."""
    env = dict(os.environ if env is None else env)
    links = [str(pyspark_wheelhouse()), *filter(None, env.get("UV_FIND_LINKS", "").split(" "))]
    env["UV_FIND_LINKS"] = " ".join(links)
    return env


if __name__ == "__main__":
    print(pyspark_wheelhouse())
