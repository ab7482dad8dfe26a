"""A bake holds only what its answers need, and reads as written by hand for its project.

Every entry point of the job wheel is called by a job of the bake or documented as a command
in its README; every module of the job package is reached from an entry point. No file
mentions the template's making: an issue number, a file that only the template has, Jinja
left unrendered, the runner's old ``<package>.local`` command. The docs' numbered headings
have no gaps, and the README's file tree is aligned.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from bake import SNAPSHOTS

TEMPLATE_TESTS = {p.name for p in (Path(__file__).resolve().parent).glob("test_*.py")}
BAKES = sorted(SNAPSHOTS)


@pytest.fixture(scope="module", params=BAKES)
def project(request, baked) -> Path:
    return baked(**SNAPSHOTS[request.param])


def entry_points(project: Path) -> dict[str, str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]


def job_entry_points(project: Path) -> set[str]:
    called = set()

    def walk(node):
        if isinstance(node, dict):
            if "python_wheel_task" in node:
                called.add(node["python_wheel_task"]["entry_point"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((project / "resources").glob("*.yml")):
        walk(yaml.safe_load(path.read_text()))
    return called


def test_every_entry_point_is_run_by_a_job_or_documented_as_a_command(project):
    readme = (project / "README.md").read_text()
    called = job_entry_points(project)
    unused = [name for name in entry_points(project) if name not in called and f"uv run {name} " not in readme]
    assert unused == []


def imported_modules(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports (relative or absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base.split(".")[0] == package:
                base = base.removeprefix(package).lstrip(".")
                if base:
                    found.add(base.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
    return found


def test_every_module_of_the_job_package_is_reached_from_an_entry_point(project):
    package = project.name
    folder = project / "src" / package
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    reached = {target.split(":")[0].split(".")[1] for target in entry_points(project).values()}
    pending = list(reached)
    while pending:
        module = pending.pop()
        for name in imported_modules(folder / f"{module}.py", package):
            if name in modules and name not in reached:
                reached.add(name)
                pending.append(name)
    assert sorted(modules - reached) == []


def text_files(project: Path):
    for path in sorted(project.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".sum",):
            yield path.relative_to(project).as_posix(), path.read_text()


REMNANTS = {
    "an issue number": re.compile(r"(?i)\bissues? #?\d+|(?<![\w&/])#\d+\b"),
    "unrendered Jinja": re.compile(r"\{%|\{#"),
    "the old .local command": re.compile(r"-m \S+\.local\b|``local`` runs"),
    "the template's tools or fake workspace": re.compile(r"(?<![\w.-])(tools|clitest)/"),
}


def test_no_file_mentions_the_making_of_the_template(project):
    own = {p.name for p in project.rglob("test_*.py")}
    found = []
    for relative, text in text_files(project):
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in REMNANTS.items():
                if pattern.search(line):
                    found.append(f"{relative}:{number}: {what}: {line.strip()}")
            for name in re.findall(r"\btest_\w+(?:\.py)?", line):
                module = name if name.endswith(".py") else f"{name}.py"
                if module in TEMPLATE_TESTS and module not in own:
                    found.append(f"{relative}:{number}: the template's {module}: {line.strip()}")
    assert found == []


def test_numbered_doc_headings_have_no_gaps(project):
    for path in sorted((project / "docs").glob("*.md")):
        for level in ("##", "###"):
            numbers = [int(n) for n in re.findall(rf"^{level} (\d+)\.", path.read_text(), re.MULTILINE)]
            assert numbers == list(range(1, len(numbers) + 1)), (path.name, level, numbers)


def test_the_readme_file_tree_is_aligned(project):
    readme = (project / "README.md").read_text()
    tree = readme.split("## What was generated", 1)[1].split("```", 2)[1]
    columns = set()
    for line in tree.splitlines()[1:]:
        match = re.match(r"^( *\S+(?: \S+)*?)( {2,})(\S)", line)
        if match and not line.startswith(" " * 20):
            columns.add(match.start(3))
    assert len(columns) == 1, sorted(columns)
