"""The template suite's time per test file, from the JUnit report of the last `make test`.

    python tools/suite_times.py [build/test-report.xml]

`make test` writes the report (pytest --junitxml); `make bench` prints this table after its
figures, slowest file first, so the next slow file is visible. Times are the sum of each
file's tests (setup, call and teardown), so with several xdist workers they add up to more
than the wall time, which the report's own total gives.

Then the slowest test functions (mean seconds over their parameters), in the form of the
``RUN_FIRST`` table of tests/conftest.py, which starts the slowest tests first under xdist.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

DEFAULT = Path("build") / "test-report.xml"


def _split(classname: str) -> tuple[str, list[str]]:
    """("tests/test_x", its test classes) from a JUnit classname: "tests.test_x" or "tests.test_x.TestClass"."""
    parts = classname.split(".")
    for index, part in enumerate(parts):
        if part.startswith("test_"):
            return "/".join(parts[: index + 1]), parts[index + 1 :]
    return classname or "?", []


def _module(classname: str) -> str:
    """tests/test_x from a JUnit classname: "tests.test_x" or "tests.test_x.TestClass"."""
    return _split(classname)[0]


def per_file(report: Path) -> tuple[dict[str, tuple[float, int]], float]:
    """{file: (seconds, tests)} and the suite's wall time, from a JUnit XML report."""
    root = ET.parse(report).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for case in suite.iter("testcase"):
        name = _module(case.get("classname", ""))
        totals[name][0] += float(case.get("time", 0))
        totals[name][1] += 1
    return {name: (seconds, int(count)) for name, (seconds, count) in totals.items()}, float(suite.get("time", 0))


def slowest_functions(report: Path, at_least: float = 30.0) -> dict[str, float]:
    """{"test_x.py::test_name": mean seconds over its parameters} of the test functions that
    take ``at_least`` seconds, slowest first (the keys of tests/conftest.py's ``RUN_FIRST``)."""
    times: dict[str, list[float]] = defaultdict(list)
    for case in ET.parse(report).getroot().iter("testcase"):
        module, classes = _split(case.get("classname", ""))
        function = case.get("name", "").split("[", 1)[0]
        times["::".join([f"{module.rsplit('/', 1)[-1]}.py", *classes, function])].append(float(case.get("time", 0)))
    means = {name: sum(values) / len(values) for name, values in times.items()}
    return dict(sorted(((n, m) for n, m in means.items() if m >= at_least), key=lambda item: -item[1]))


def main(argv: list[str]) -> int:
    report = Path(argv[0]) if argv else DEFAULT
    if not report.exists():
        print(f"No {report}: run make test first for the template suite's time per file.")
        return 0
    files, wall = per_file(report)
    tests = sum(count for _, count in files.values())
    print(f"\nTemplate suite (last make test, {report}): {tests} tests, {wall / 60:.1f} min wall")
    print(f"  {'file':50}{'tests':>7}{'seconds':>10}")
    for name, (seconds, count) in sorted(files.items(), key=lambda item: -item[1][0]):
        print(f"  {name + '.py':50}{count:>7}{seconds:>10.0f}")
    print("\nSlowest test functions, seconds per run (the figures of RUN_FIRST in tests/conftest.py)")
    for name, seconds in slowest_functions(report).items():
        print(f"  {name:90}{seconds:>6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
