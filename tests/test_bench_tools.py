"""The figures `make bench` prints come from tools that are tested like the rest.

- tools/bench_phases.py, the pytest plugin that records where a generated suite's wall time and
  CPU time went;
- tools/suite_times.py, the template suite's time per test file from the JUnit report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from suite_times import _module, per_file

TOOLS = Path(__file__).resolve().parents[1] / "tools"


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
