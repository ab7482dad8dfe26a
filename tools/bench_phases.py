"""A pytest plugin that writes where a test run's wall time went, for `make bench`.

    BENCH_PHASES=out.json BENCH_T0=<time.time() before the command> pytest -p bench_phases ...

Phases, in seconds from BENCH_T0 (the moment the benchmark started the command, so `uv run`
and Python's start count too):

- ``start``: until pytest configures (uv, the interpreter, pytest and its plugins);
- ``collect``: collection, which imports the test modules and with them the project's
  libraries, while the project's conftest starts Spark in the background;
- ``tests``: from the first test to the end of the session; split per test file and per
  phase of a test (``setup``, where the shared fixtures train once; ``call``; ``teardown``);
- ``finish``: the end of the session until the plugin's last hook.

It also writes the CPU time the run used, split by process (``cpu``): pytest's own process,
the Spark JVM and Spark's Python workers (Linux only: read from /proc at the end of the
session, while they still run). CPU time above the wall time times the cores says the run is
bound by the machine, not by waiting.

The plugin has no dependencies beyond pytest, so the generated project's environment loads
it from tools/ through PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

_T0 = float(os.environ.get("BENCH_T0") or time.time())
_marks: dict[str, float] = {}
_per_file: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
_cpu: dict[str, float] = {}


def _mark(name: str) -> None:
    _marks.setdefault(name, time.time() - _T0)


def pytest_configure(config):
    _mark("configured")


def pytest_collection_finish(session):
    _mark("collected")


def pytest_runtest_logstart(nodeid, location):
    _mark("first_test")


def pytest_runtest_logreport(report):
    _per_file[report.nodeid.split("::")[0]][report.when] += report.duration


def pytest_sessionfinish(session):
    _mark("tests_done")
    _cpu["pytest"] = sum(os.times()[:2])
    for command, seconds in _descendants_cpu(os.getpid()).items():
        _cpu[command] = _cpu.get(command, 0.0) + seconds


def _descendants_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of the live descendants of ``root``, by command name."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        children[int(fields[1])].append((int(entry.name), command, (int(fields[11]) + int(fields[12])) / ticks))
    totals: dict[str, float] = defaultdict(float)
    pending = [root]
    while pending:
        for pid, command, seconds in children.get(pending.pop(), []):
            totals[command] += seconds
            pending.append(pid)
    return dict(totals)


def pytest_unconfigure(config):
    _mark("end")
    target = os.environ.get("BENCH_PHASES")
    if not target:
        return
    marks = _marks
    first = marks.get("first_test", marks.get("tests_done", 0.0))
    phases = {
        "start": marks.get("configured", 0.0),
        "collect": marks.get("collected", 0.0) - marks.get("configured", 0.0),
        "tests": marks.get("tests_done", 0.0) - first,
        "finish": marks["end"] - marks.get("tests_done", marks["end"]),
    }
    with open(target, "w") as out:
        json.dump({"phases": phases, "files": {k: dict(v) for k, v in _per_file.items()}, "cpu": _cpu}, out)
