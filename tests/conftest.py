from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from bake import bake  # noqa: E402

# Golden output of baked projects (test_snapshots.py): their own tests are not the template's.
# runner/: tests of the local runner, run inside a baked project by test_local_runner.py.
collect_ignore = ["snapshots", "runner"]

# `make test` runs on one pytest-xdist worker per core. A test of several minutes that starts
# late keeps one worker busy while the others have nothing left, and in collection order the
# README walkthroughs come near the end. The tests of RUN_FIRST therefore start first, longest
# first; the rest keep their order. Only the longest are listed: the other generated suites (one
# to two minutes each) stay in the middle, where they fill in for the other worker. Fresh-clone
# runs, A/B: 1275 s with this order, 1485 s without (docs/decisions.md). The figures are seconds
# per test from a rehearsal's build/test-report.xml (tools/suite_times.py prints them); they set
# the order only, never a result.
RUN_FIRST = {
    "test_readme_walkthrough.py::test_the_generated_readme_works_as_written": 250,
    "test_feature_store.py::test_the_generated_suite_passes_with_feature_tables": 115,
}


def run_first_key(nodeid: str) -> str:
    """``RUN_FIRST``'s key of a test: its file name and function, without folder or parameters."""
    return nodeid.split("[", 1)[0].rsplit("/", 1)[-1]


def pytest_collection_modifyitems(items):
    """The tests of ``RUN_FIRST`` first, longest first; every other test in collection order."""
    items.sort(key=lambda item: -RUN_FIRST.get(run_first_key(item.nodeid), 0))


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Factory: ``baked(**answers)`` bakes once per distinct answers and returns the project dir."""
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("baked")

    def _bake(**answers: object) -> Path:
        key = json.dumps(answers, sort_keys=True)
        if key not in cache:
            digest = hashlib.sha1(key.encode()).hexdigest()[:10]
            cache[key] = bake(root / digest, **answers)
        return cache[key]

    return _bake


@functools.cache
def _real_cli():
    """The built CLI and fake workspace, or the reason they are missing (None, reason)."""
    import cli_build

    try:
        return cli_build.build(log=lambda line: print(line, file=sys.stderr)), ""
    except RuntimeError as error:
        return None, str(error)


@pytest.fixture(scope="session")
def real_cli():
    """The real Databricks CLI (pinned in clitest/go.mod) and its fake workspace, built once.

    Without Go the real-CLI tests skip with the reason; under CI=true they must run.
    """
    binaries, reason = _real_cli()
    if binaries is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return binaries


@pytest.fixture(scope="session")
def fake_workspace(real_cli, tmp_path_factory):
    """One fake workspace server for the session; every request must find a handler."""
    from realcli import FakeWorkspace

    folder = tmp_path_factory.mktemp("fake")
    from helpers import DEFAULTS

    # The bake's CI, staging and prod principals: three identities the workspace knows.
    principals = ",".join(DEFAULTS[f"{who}_service_principal"] for who in ("ci", "staging", "prod"))
    flags = ("-requests", str(folder / "requests.jsonl"), "-service-principals", principals)
    fake = FakeWorkspace(real_cli, folder / "fakeworkspace.log", *flags)
    fake.requests = folder / "requests.jsonl"
    yield fake
    code, log = fake.stop()
    assert code == 0, f"the fake workspace reported failed requests:\n{log[-4000:]}"


@pytest.fixture
def cli(real_cli, fake_workspace, tmp_path):
    """A fresh fake workspace (its own token) and HOME, to run the real CLI in."""
    from realcli import Session

    home = tmp_path / "home"
    home.mkdir()
    return Session(real_cli, fake_workspace, home)


@pytest.fixture(scope="session")
def bundle_schema_path() -> Path:
    """The bundle JSON schema of the pinned CLI (`databricks bundle schema`), else the one named
    by DATABRICKS_BUNDLE_SCHEMA, else skip with the reason."""
    binaries, reason = _real_cli()
    if binaries is not None:
        return binaries.schema
    env = os.environ.get("DATABRICKS_BUNDLE_SCHEMA")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"DATABRICKS_BUNDLE_SCHEMA={env} does not exist")
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(f"no bundle schema: {reason}, or set DATABRICKS_BUNDLE_SCHEMA")
