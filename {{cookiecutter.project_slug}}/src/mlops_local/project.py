"""The project the local runner works on: its folder, its job package and its state folder."""

from __future__ import annotations

import functools
import importlib
import json
import os
import tomllib
from pathlib import Path
from types import ModuleType

# The interface with the job package's ``runtime``: set, it names the local state folder.
LOCAL_DIR_ENV = "MLOPS_LOCAL_DIR"
# The job package to drive; by default, the one the nearest pyproject.toml names.
PACKAGE_ENV = "MLOPS_LOCAL_PACKAGE"
# The project folder (its stand_in.py); by default, the nearest one with a databricks.yml.
PROJECT_ENV = "MLOPS_LOCAL_PROJECT"
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
    """Point this process's jobs at the project's local state; return the state folder."""
    folder = state_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[LOCAL_DIR_ENV] = str(folder)
    os.environ[PROJECT_ENV] = str(Path(project_dir).resolve())
    os.environ.setdefault(PACKAGE_ENV, package_name(project_dir))
    return folder


def package_name(project_dir: Path | None = None) -> str:
    """The job package: ``[project].name`` of the project's pyproject.toml, as an import name."""
    return _package_name(find_project_dir(project_dir))


@functools.cache
def _package_name(project_dir: Path) -> str:
    return tomllib.loads((project_dir / "pyproject.toml").read_text())["project"]["name"].replace("-", "_")


def use_package(name: str) -> None:
    """Drive job package ``name`` (the job package's ``runtime`` says so before its first local call)."""
    os.environ.setdefault(PACKAGE_ENV, name)


def project_module(name: str) -> ModuleType:
    """Module ``name`` of the job package (``model``, ``runtime``, ``promotion``, ...)."""
    return importlib.import_module(f"{os.environ.get(PACKAGE_ENV) or package_name()}.{name}")


# What the local state made by earlier runs depends on: the predictions and monitoring
# tables have these columns, the registered versions these inputs and outputs.
PROBLEM_DEFINITIONS = ("SOURCE_COLUMNS", "TIMESTAMP", "LABEL", "FEATURES", "PROBLEM_TYPE", "PREDICTION_TYPE")
PROBLEM_FILE = "problem.json"


def problem_changed(state: Path) -> str | None:
    """What changed in ``model.py``'s problem since the last local run in ``state``, or None.

    Records the problem of this run either way. The first run records it and says nothing.
    """
    model = project_module("model")
    now = {name: repr(getattr(model, name, None)) for name in PROBLEM_DEFINITIONS}
    record = Path(state) / PROBLEM_FILE
    before = json.loads(record.read_text()) if record.is_file() else None
    record.write_text(json.dumps(now, indent=1) + "\n")
    if before is None:
        return None
    changed = [name for name in PROBLEM_DEFINITIONS if before.get(name) != now[name]]
    return ", ".join(changed) or None
