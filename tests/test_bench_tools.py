"""The figures `make bench` prints come from tools that are tested like the rest.

- tools/bench_phases.py, the pytest plugin that records where a generated suite's wall time and
  CPU time went;
- tools/suite_times.py, the template suite's time per test file from the JUnit report;
- the order of `make test` (tests/conftest.py, ``RUN_FIRST``): the slowest tests start first.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

from conftest import RUN_FIRST, pytest_collection_modifyitems
from suite_times import _module, per_file, slowest_functions

TOOLS = Path(__file__).resolve().parents[1] / "tools"
TESTS = Path(__file__).resolve().parent


def test_the_phase_plugin_records_phases_files_and_cpu(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import subprocess, sys, time

            def test_waits():
                time.sleep(0.3)

            def test_spends_cpu_in_a_child():
                subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True)
            """
        )
    )
    report = tmp_path / "phases.json"
    env = {
        "PYTHONPATH": str(TOOLS),
        "BENCH_PHASES": str(report),
        "BENCH_T0": repr(time.time()),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_phases", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    assert set(figures["phases"]) == {"start", "collect", "tests", "finish"}
    assert figures["phases"]["tests"] >= 0.3
    assert figures["files"]["test_sample.py"]["call"] >= 0.3
    assert figures["cpu"]["pytest"] > 0


def test_suite_times_groups_by_test_file(tmp_path):
    assert _module("tests.test_real_cli") == "tests/test_real_cli"
    assert _module("tests.test_real_cli.TestDeploy") == "tests/test_real_cli"
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite time="12.5">'
        '<testcase classname="tests.test_a" name="x" time="2"/>'
        '<testcase classname="tests.test_a" name="y" time="3"/>'
        '<testcase classname="tests.test_b.TestB" name="z" time="4"/>'
        "</testsuite></testsuites>"
    )
    files, wall = per_file(report)
    assert files == {"tests/test_a": (5.0, 2), "tests/test_b": (4.0, 1)}
    assert wall == 12.5


def test_slowest_functions_are_keyed_as_run_first_is(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite time="200">'
        '<testcase classname="tests.test_a" name="test_walk[x]" time="100"/>'
        '<testcase classname="tests.test_a" name="test_walk[y]" time="60"/>'
        '<testcase classname="tests.test_b.TestB" name="test_suite" time="90"/>'
        '<testcase classname="tests.test_b" name="test_quick" time="2"/>'
        "</testsuite></testsuites>"
    )
    assert slowest_functions(report) == {"test_b.py::TestB::test_suite": 90.0, "test_a.py::test_walk": 80.0}


def test_run_first_names_test_functions_that_exist():
    """A renamed test would silently lose its place at the front."""
    for key in RUN_FIRST:
        file, function = key.split("::")
        tree = ast.parse((TESTS / file).read_text())
        assert function in {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}, key


def test_the_slowest_tests_start_first_and_the_rest_keep_their_order():
    walk, suite = sorted(RUN_FIRST, key=RUN_FIRST.get, reverse=True)[:2]
    ids = ["tests/test_a.py::test_one", f"tests/{suite}[x]", "tests/test_b.py::test_two[1]", f"tests/{walk}[y]"]
    ids += [f"tests/{walk}[z]", "tests/test_a.py::test_three"]
    items = [SimpleNamespace(nodeid=nodeid) for nodeid in ids]
    pytest_collection_modifyitems(items)
    assert [item.nodeid for item in items] == [ids[3], ids[4], ids[1], ids[0], ids[2], ids[5]]
