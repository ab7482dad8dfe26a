"""One command surface: the generated Makefile's targets are what the README and CI call.

The lint, offline-validate, test and scenario commands are written once, in the project's
Makefile; the README's shell blocks and every CI platform's pull-request checks call the
targets instead of repeating the commands, also when the project is one folder of a
repository (``project_root``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from test_cicd import EXTRACT, PLATFORMS
from test_monorepo import bake_into

# Target -> the commands it runs (in order).
TARGETS = {
    "install": ["uv sync --locked --compile-bytecode"],
    "lint": ["uv run ruff check .", "uv run ruff format --check ."],
    "test": ["uv run pytest"],
    "test-fast": ['uv run pytest -m "not slow"'],
    "validate": ["uv run python -m mlops_local validate"],
    "scenario": ["uv run python -m mlops_local scenario"],
}
# The commands the targets own: no CI file repeats them.
OWNED = ("uv sync --locked", "uv run ruff", "uv run pytest", "mlops_local validate", "mlops_local scenario")
# `make <target>` as a command: at the start of a line or a CI step, after `&&`, or in backticks.
MAKE_CALL = re.compile(r"(?:^\s*|`|run: |script: |- |&& )make ([a-z][a-z-]*)", re.MULTILINE)


def makefile_targets(project: Path) -> dict[str, list[str]]:
    """The Makefile's rules: target -> recipe lines, with $(PACKAGE) expanded."""
    text = (project / "Makefile").read_text()
    package = re.search(r"^PACKAGE := (\S+)$", text, re.MULTILINE).group(1)
    rules: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        rule = re.match(r"^([a-z][a-z-]*):", line)
        if rule:
            current = rules.setdefault(rule.group(1), [])
        elif line.startswith("\t") and current is not None:
            current.append(line[1:].replace("$(PACKAGE)", package))
        elif not line.strip():
            current = None
    return rules


def test_the_makefile_runs_each_command_once(baked):
    project = baked(project_slug="surface")
    rules = makefile_targets(project)
    for target, commands in TARGETS.items():
        assert rules.get(target) == [c.format(pkg="surface") for c in commands], target
    phony = re.search(r"^\.PHONY: (.*)$", (project / "Makefile").read_text(), re.MULTILINE).group(1).split()
    assert set(TARGETS) <= set(phony)


def test_the_readme_calls_the_targets(baked):
    project = baked(project_slug="surface")
    readme = (project / "README.md").read_text()
    called = set(MAKE_CALL.findall(readme))
    assert {"lint", "test", "test-fast", "validate", "scenario"} <= called
    assert called <= set(makefile_targets(project)), called - set(makefile_targets(project))
    for command in (
        'uv run pytest -m "not slow"',
        "uv run ruff check",
        "mlops_local validate  ",
        "mlops_local scenario  ",
    ):
        assert command not in readme, f"README repeats {command!r} instead of calling make"


def test_bytecode_is_compiled_by_uv_sync_not_by_every_uv_run(baked):
    """`uv sync --compile-bytecode` (README, make install) compiles once; `[tool.uv] compile-bytecode`
    would make every `uv run` compile the whole environment again (uv issue 12202)."""
    project = baked(project_slug="surface")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert "compile-bytecode" not in pyproject.get("tool", {}).get("uv", {})
    readme = (project / "README.md").read_text()
    syncs = re.findall(r"^uv sync\b.*$", readme, re.MULTILINE)
    assert syncs and all("--compile-bytecode" in line for line in syncs), syncs


def _check_calls(project: Path, platform: str, ci_root: Path) -> None:
    targets = set(makefile_targets(project))
    jobs = EXTRACT[platform](project)
    pull_request = "\n".join(job.commands for job in jobs if "pull_request" in job.triggers)
    for target in ("install", "lint", "validate", "test", "scenario"):
        assert target in MAKE_CALL.findall(pull_request), f"{platform}: pull requests do not run make {target}"
    ci_text = "\n".join(path.read_text() for path in ci_root.rglob("*") if path.is_file() and _is_ci(path))
    for command in OWNED:
        assert command not in ci_text, f"{platform}: CI repeats {command!r} instead of calling make"
    assert set(MAKE_CALL.findall(ci_text)) <= targets, set(MAKE_CALL.findall(ci_text)) - targets


def _is_ci(path: Path) -> bool:
    parts = path.parts
    return path.name == ".gitlab-ci.yml" or ".github" in parts or ".azure" in parts or ".gitlab" in parts


@pytest.mark.parametrize("platform", PLATFORMS)
def test_ci_calls_the_targets(baked, platform):
    project = baked(project_slug="surface", cicd_platform=platform, deployment_pattern="hybrid")
    _check_calls(project, platform, project)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_ci_of_a_project_in_a_repository_folder_calls_the_targets(tmp_path, platform):
    """CI runs in the project's folder, where its Makefile is."""
    project = bake_into(tmp_path, "surface", "services/surface", "deploy_code", platform)
    _check_calls(project, platform, tmp_path)
