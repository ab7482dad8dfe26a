"""The generated package's layout: job code in the wheel, the local runner beside it.

- The job wheel (``uv build --wheel``, what the bundle uploads) holds the job package and
  nothing else: no local runner, no PyYAML among its requirements.
- The job code has no local branches: only ``runtime.py`` knows where it runs, and the job
  package imports without the local runner installed.
- The local runner, ``src/mlops_local``, is the same in every project, so a template update
  replaces it whole; it names no project.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from bake import project_env
from helpers import BIN

# What would mean a job module knows it may run locally.
LOCAL_KNOWLEDGE = re.compile(r"\b(is_local|local_dir|local_record|MLOPS_LOCAL_DIR|mlops_local)\b")


def job_modules(project: Path) -> list[Path]:
    return sorted((project / "src" / project.name).glob("*.py"))


def test_the_job_wheel_holds_the_job_package_only(baked, tmp_path):
    project = baked(project_slug="wheel_check")
    subprocess.run([str(BIN / "uv"), "build", "--wheel", "-q", "-o", str(tmp_path)], cwd=project, check=True)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"wheel_check"}, packages
    assert not any("mlops_local" in name or "/local/" in name for name in names), names
    requirements = [
        line.split(":", 1)[1].strip().lower() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    assert requirements and not any(r.startswith("pyyaml") for r in requirements), requirements


def test_only_runtime_knows_where_the_jobs_run(baked):
    project = baked()
    knowing = {
        module.name: sorted(set(LOCAL_KNOWLEDGE.findall(module.read_text())))
        for module in job_modules(project)
        if module.name != "runtime.py"
    }
    assert {name: found for name, found in knowing.items() if found} == {}


def test_the_job_package_imports_without_the_local_runner(baked, tmp_path):
    """On a cluster only the wheel is installed: no module may import ``mlops_local`` at import time."""
    project = baked()
    alone = tmp_path / "site"
    alone.mkdir()
    (alone / project.name).symlink_to(project / "src" / project.name)
    modules = [f"{project.name}.{m.stem}" for m in job_modules(project) if m.stem != "__init__"]
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "assert 'mlops_local' not in sys.modules, 'imported the local runner'\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(alone)}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_local_runner_is_the_same_in_every_project(baked):
    first = baked(project_slug="alpha", deployment_pattern="deploy_code")
    second = baked(project_slug="beta_fares", deployment_pattern="hybrid", cicd_platform="gitlab", compute="classic")
    runner = {p.relative_to(first / "src"): p.read_bytes() for p in (first / "src" / "mlops_local").rglob("*.py")}
    other = {p.relative_to(second / "src"): p.read_bytes() for p in (second / "src" / "mlops_local").rglob("*.py")}
    assert runner.keys() == other.keys() and len(runner) >= 8
    assert [str(path) for path in runner if runner[path] != other[path]] == []
    for path, text in runner.items():
        assert b"alpha" not in text, f"{path} names the project"


def test_job_code_runs_locally_from_any_folder(baked, tmp_path):
    """Locally the runtime tells the local runner which package it serves: no project folder needed."""
    project = baked(project_slug="anywhere")
    code = (
        "from anywhere import model\n"
        "from anywhere.runtime import get_spark, read_table\n"
        "print(read_table(get_spark(), model.SOURCE_TABLE).limit(5).count())\n"
    )
    env = {**project_env(project, state=tmp_path / "state")}
    env.pop("MLOPS_LOCAL_PROJECT")  # first from outside the project, with nothing naming it
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    # Without the project's stand_in.py (development only) the source table is simply missing.
    assert result.returncode == 1 and "Table samples.nyctaxi.trips does not exist" in result.stderr
    # Told where the project is, the runner makes the table from the project's stand-in.
    env["MLOPS_LOCAL_PROJECT"] = str(project)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "5"
