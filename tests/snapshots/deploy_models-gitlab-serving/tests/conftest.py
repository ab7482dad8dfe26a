"""Shared fixtures: one local Spark session, one local state folder, and training done once.

Every test runs against the same local state folder (``local_state``: the MLflow SQLite
registry, model artifacts and Parquet tables) and the same Spark session. What is slow to
make is made once per run and saved as a snapshot of that folder; a fixture restores the
snapshot before its test, so each test gets its own copy of the registry and tables, and
nothing a test does is seen by the next:

- ``trained``: ``unit.ml.trained`` with version 1 trained by the training entry point;
- ``champion``: the same version validated and deployed (alias ``champion``);
- ``scenario``: the state after the whole local scenario (``run_scenario``) ran once.

A new test that needs a trained model or a champion takes ``trained`` or ``champion`` and
then trains, validates, copies or scores as it likes. Tests that only need a model name
nobody else uses take ``fresh_model``. The local stand-in of ``model.SOURCE_TABLE``
(``stand_in.py``) is generated once per machine and is in every snapshot.

The quick loop, ``pytest -m "not slow"``, leaves out the tests marked ``slow``: every test
that takes ``trained``, ``champion`` or ``scenario`` is marked so here (they need the
session's training run), and a test can carry ``@pytest.mark.slow`` itself.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from helpers import data_args, model_args
from mlops_local.workspace import StandIn, serve

PROJECT_DIR = Path(__file__).resolve().parents[1]
REGISTRY_FILE = "mlflow.db"
EXPERIMENT = "/tests/unit"
_models = itertools.count(1)
_previous_state_key = pytest.StashKey[str | None]()
# Fixtures whose tests need a trained model, so they are not in the quick loop.
SLOW_FIXTURES = {"trained", "champion", "scenario"}


def pytest_configure(config):
    """Point the run at a fresh local state folder and start Spark while the test modules import
    (not for ``--collect-only``, which runs no test)."""
    from mlops_local.environment import start_spark_early

    from my_mlops_project.runtime import LOCAL_DIR_ENV

    config.stash[_previous_state_key] = os.environ.get(LOCAL_DIR_ENV)
    os.environ[LOCAL_DIR_ENV] = tempfile.mkdtemp(prefix="mlops_local_")
    if not config.option.collectonly:
        start_spark_early(Path(os.environ[LOCAL_DIR_ENV]))


def pytest_unconfigure(config):
    from mlops_local.environment import freeze_heap

    from my_mlops_project.runtime import LOCAL_DIR_ENV

    freeze_heap(collect=False)  # the run ends: exit without walking every object once more

    shutil.rmtree(os.environ[LOCAL_DIR_ENV], ignore_errors=True)
    previous = config.stash.get(_previous_state_key, None)
    if previous is None:
        os.environ.pop(LOCAL_DIR_ENV, None)
    else:
        os.environ[LOCAL_DIR_ENV] = previous


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    """Keep the imported libraries out of the tests' garbage collections; when tests that score
    are selected, have a Spark Python worker import MLflow ahead of them."""
    from mlops_local.environment import freeze_heap, scoring_modules, warm_up_python_worker

    from my_mlops_project.runtime import local_dir

    freeze_heap()
    if not session.config.option.collectonly and any(item.get_closest_marker("slow") for item in session.items):
        warm_up_python_worker(local_dir(), scoring_modules())


class StateSnapshots:
    """Named copies of the local state folder, restored in place.

    The registry is copied with SQLite's backup API into the same file, so MLflow's open
    connections see the restored content; artifacts and tables are plain folder copies at
    the same paths, so the artifact locations recorded in the registry stay valid.
    """

    def __init__(self, state: Path, store: Path):
        self.state, self.store = state, store

    def save(self, name: str) -> None:
        target = self.store / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.state, target, ignore=shutil.ignore_patterns(REGISTRY_FILE + "*"))
        _copy_database(self.state / REGISTRY_FILE, target / REGISTRY_FILE)

    def restore(self, name: str) -> None:
        source = self.store / name
        if not source.is_dir():
            raise KeyError(f"no saved local state {name!r}")
        for entry in self.state.iterdir():
            if not entry.name.startswith(REGISTRY_FILE):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.copytree(source, self.state, ignore=shutil.ignore_patterns(REGISTRY_FILE), dirs_exist_ok=True)
        _copy_database(source / REGISTRY_FILE, self.state / REGISTRY_FILE)


def _copy_database(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture(scope="session", autouse=True)
def local_state() -> Path:
    """The local state folder (registry, artifacts, tables) of this test run (made in ``pytest_configure``)."""
    from my_mlops_project.runtime import configure_mlflow, local_dir

    configure_mlflow()
    return local_dir()


@pytest.fixture(scope="session")
def spark(local_state):
    from my_mlops_project.runtime import get_spark

    return get_spark()


@pytest.fixture(scope="session")
def snapshots(local_state, spark, tmp_path_factory) -> StateSnapshots:
    """Saved states: ``baseline`` (empty registry and the sample table), and what other fixtures add."""
    from my_mlops_project.model import SOURCE_TABLE
    from my_mlops_project.runtime import read_table

    saved = StateSnapshots(local_state, tmp_path_factory.mktemp("snapshots"))
    read_table(spark, SOURCE_TABLE)  # makes the local stand-in
    saved.save("baseline")
    return saved


@pytest.fixture
def fresh_model():
    """A model name no other test uses, in the test catalog."""
    from my_mlops_project.names import ModelRef

    return ModelRef("unit", "ml", f"model_{next(_models)}")


@pytest.fixture(scope="session")
def _trained_states(snapshots) -> tuple[object, str]:
    """Train once: save ``trained`` (one version) and ``champion`` (validated and deployed)."""
    from my_mlops_project import deploy, train, validate
    from my_mlops_project.names import ModelRef

    model_ref = ModelRef("unit", "ml", "trained")
    snapshots.restore("baseline")
    version = train.main([*model_args(model_ref), f"--experiment_name={EXPERIMENT}", *data_args()])
    snapshots.save("trained")
    validate.main(
        [*model_args(model_ref), f"--model_version={version}", f"--experiment_name={EXPERIMENT}", *data_args()]
    )
    deploy.main(model_args(model_ref))
    snapshots.save("champion")
    return model_ref, version


@pytest.fixture
def trained(snapshots, _trained_states):
    """A model with one version trained by ``train.main``, nothing else; returns (model_ref, version)."""
    snapshots.restore("trained")
    return _trained_states


@pytest.fixture
def champion(snapshots, _trained_states):
    """The ``trained`` version, validated and deployed as ``champion``; returns (model_ref, version)."""
    snapshots.restore("champion")
    return _trained_states


@pytest.fixture(scope="session")
def _scenario_run(snapshots) -> tuple[list, list[str]]:
    from mlops_local.scenario import run_scenario

    snapshots.restore("baseline")
    lines: list[str] = []
    runs = run_scenario(PROJECT_DIR, snapshots.state, echo=lines.append)
    snapshots.save("scenario")
    return runs, lines


@pytest.fixture
def scenario(snapshots, _scenario_run) -> tuple[list, list[str]]:
    """The state after the whole local scenario ran (once per test run); returns its job runs and output lines."""
    snapshots.restore("scenario")
    return _scenario_run


@pytest.fixture
def workspace():
    """A real ``WorkspaceClient`` talking to an empty, in-memory stand-in for a workspace
    (``mlops_local/workspace.py``, which local runs use too); yields ``(client, stand_in)``."""
    stand_in = StandIn()
    server, client = serve(stand_in)
    yield client, stand_in
    server.shutdown()
