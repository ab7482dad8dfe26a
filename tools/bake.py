"""Bake the template from Python, for the tests, the demo and the benchmark."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]


def bake(output_dir: Path, **answers: object) -> Path:
    """Generate a project into ``output_dir`` with ``answers``; return its directory."""
    output_dir.mkdir(parents=True, exist_ok=True)
    project = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context={key: value for key, value in answers.items()},
        output_dir=str(output_dir),
        overwrite_if_exists=False,
    )
    return Path(project)


def rebake(output_dir: Path, **answers: object) -> Path:
    """Like ``bake``, but start from an empty ``output_dir``."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    return bake(output_dir, **answers)


def project_env(project: Path, state: Path | None = None) -> dict[str, str]:
    """Environment to run a baked project's code with this interpreter, without installing it.

    ``state`` is the local-run folder (MLOPS_LOCAL_DIR); None leaves the project's default.
    """
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "PYSPARK_PYTHON": sys.executable}
    env.pop("MLOPS_LOCAL_DIR", None)
    if state is not None:
        env["MLOPS_LOCAL_DIR"] = str(state)
    return env
