"""Put another ML problem into a baked project, as a data scientist would, and run its own suite.

A swap may replace ``src/<package>/model.py`` (whole, or only the definitions it marks
``Change this``), the project's ``stand_in.py`` and the defaults of the bundle's table and
date variables; nothing else. The generated suite then has to pass, its scenario included.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from bake import project_env

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# What a swap may change in databricks.yml: the defaults of these variables.
SWAPPABLE_VARIABLES = ("training_table", "scoring_table", "training_end_date", "score_from_date")
SCENARIO_TESTS = (
    ("tests.test_scenario", "test_scenario_gives_prod_a_champion_with_lineage"),
    ("tests.test_scenario", "test_a_retrain_after_drift_learns_from_the_drifted_window"),
)


def set_variable_defaults(databricks_yml: Path, defaults: dict[str, str]) -> None:
    """Set the defaults of the bundle's table and date variables (``SWAPPABLE_VARIABLES``)."""
    text = databricks_yml.read_text()
    for variable, value in defaults.items():
        assert variable in SWAPPABLE_VARIABLES, f"a swap changes only {SWAPPABLE_VARIABLES}, not {variable}"
        text, count = re.subn(rf"(\n  {variable}:\n(?:    .*\n)*?    default: ).*\n", rf'\g<1>"{value}"\n', text)
        assert count == 1, f"no default for the {variable} variable in {databricks_yml}"
    databricks_yml.write_text(text)


def copy_project(baked_project: Path, folder: Path) -> Path:
    return Path(shutil.copytree(baked_project, folder / baked_project.name))


def model_py(project: Path) -> Path:
    return next(project.glob("src/*/model.py"))


def run_suite(project: Path, report: Path, *pytest_args: str) -> set[tuple[str, str]]:
    """Run the project's own tests; fail with their output unless they pass. Returns the passed tests."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    return {(case.get("classname"), case.get("name")) for case in cases if not list(case)}  # passed: no children


def replace_definitions(path: Path, definitions: str, drop_imports: tuple[str, ...] = ()) -> None:
    """Replace the top-level definitions of module ``path`` that ``definitions`` (Python source)
    defines again, each where it stands; append those it adds; put its imports after the
    module's own. ``drop_imports``: modules whose imports the module no longer needs."""
    import ast

    def names(node: ast.stmt) -> list[str]:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            return [node.name]
        if isinstance(node, ast.Assign):
            return [t.id for t in node.targets if isinstance(t, ast.Name)]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            return [node.target.id]
        return []

    lines = path.read_text().splitlines()
    old_nodes = ast.parse("\n".join(lines)).body
    new_source = definitions.strip("\n").splitlines()
    new_nodes = ast.parse("\n".join(new_source)).body

    def source(node: ast.stmt, text: list[str]) -> list[str]:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        return text[first - 1 : node.end_lineno]

    imports = [n for n in new_nodes if isinstance(n, ast.Import | ast.ImportFrom)]
    replacements = {name: source(n, new_source) for n in new_nodes for name in names(n)}
    unused = dict(replacements)
    edits: list[tuple[int, int, list[str]]] = []  # (first line, last line, new lines), 1-based
    for node in old_nodes:
        found = [name for name in names(node) if name in replacements]
        if found:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            edits.append((first, node.end_lineno, replacements[found[0]]))
            for name in found:
                unused.pop(name, None)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if any(module == m or module.startswith(m + ".") for m in drop_imports):
                edits.append((node.lineno, node.end_lineno, []))
    last_import = max(n.end_lineno for n in old_nodes if isinstance(n, ast.Import | ast.ImportFrom))
    for first, last, new in sorted(edits, reverse=True):
        lines[first - 1 : last] = new
        if last <= last_import:
            last_import -= last - first + 1 - len(new)
    lines[last_import:last_import] = [line for n in imports for line in source(n, new_source)]
    appended = {id(v): v for v in unused.values()}.values()
    for block in appended:
        lines += ["", "", *block]
    path.write_text("\n".join(lines) + "\n")


def change_this_names(path: Path) -> set[str]:
    """The top-level names module ``path`` marks ``Change this``: a function or class whose
    docstring starts so, and the statements of a block (no blank line) under a ``# Change
    this`` comment."""
    import ast

    lines = path.read_text().splitlines()
    marked: set[str] = set()
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            if (ast.get_docstring(node) or "").startswith("Change this"):
                marked.add(node.name)
            continue
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        row = node.lineno - 2  # walk up the block to its first line
        while row >= 0 and lines[row].strip() and not lines[row].startswith("# Change this"):
            row -= 1
        if row >= 0 and lines[row].startswith("# Change this"):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            marked.update(t.id for t in targets if isinstance(t, ast.Name))
    return marked


def defined_names(definitions: str) -> set[str]:
    import ast

    names = set()
    for node in ast.parse(definitions).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names
