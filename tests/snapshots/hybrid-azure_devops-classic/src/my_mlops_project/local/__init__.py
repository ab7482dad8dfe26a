"""Run the bundle's jobs on this machine: local Spark and an MLflow SQLite registry.

``python -m <package>.local --help`` lists the commands. All local state (the
registry, the model artifacts, the tables of every catalog) lives in one folder,
``.mlops_local/`` in the project, which stands in for the workspace and Unity Catalog:
each target's catalog is the first part of its model and table names, as in Unity Catalog.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..runtime import LOCAL_DIR_ENV

STATE_DIR_NAME = ".mlops_local"


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder, from ``start`` (default: the working directory) up, with a databricks.yml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "databricks.yml").is_file():
            return folder
    raise FileNotFoundError(f"No databricks.yml in {here} or above: run this from the project folder")


def state_dir(project_dir: Path) -> Path:
    """Where local runs keep their state (``MLOPS_LOCAL_DIR`` overrides the default)."""
    configured = os.environ.get(LOCAL_DIR_ENV)
    return Path(configured).resolve() if configured else Path(project_dir) / STATE_DIR_NAME


def activate(project_dir: Path) -> Path:
    """Point this process's runtime at the project's local state; return the state folder."""
    folder = state_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[LOCAL_DIR_ENV] = str(folder)
    return folder
