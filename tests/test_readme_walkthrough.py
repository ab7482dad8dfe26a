"""The generated README, followed literally, for each deployment pattern (slow: minutes each).

A fresh bake in its own folder, then every shell block of the generated README.md, in order,
one command at a time, as a new team would type them: `uv sync` (a real resolve against the
package index, the uv cache shared between runs, PySpark's wheel built once by
tools/wheelhouse.py), `git add` and `git commit`, the tests with
`uv run pytest`, the quick loop, offline validation, each local job, the scenario. Every
command must exit 0. A block whose first line is a `# needs ...` comment (a Databricks
workspace, the template's repository) is left out, and only those.

This is also the test of the generated suites: they run in the project's own environment,
made by `uv sync` from its pyproject.toml, not in the template's.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from bake import bake
from helpers import BIN
from wheelhouse import uv_find_links

PATTERNS = ["deploy_code", "deploy_models", "hybrid"]
QUICK_LOOP, FULL_SUITE = "make test-fast", "make test "
# A fenced shell block, with the HTML comment on the line before it, if any.
BLOCK = re.compile(r"^(?:[ ]*(<!-- *needs .*?-->)\n)?( *)```(?:bash|sh|shell)\n(.*?)^\2```", re.MULTILINE | re.DOTALL)
NEEDS = "# needs "
# Variables of the template's own environment that must not reach the project's commands.
ISOLATE = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MLOPS_LOCAL_DIR", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")


def shell_blocks(readme: str) -> list[tuple[bool, str]]:
    """Every fenced shell block of ``readme``, dedented, in order, with whether it is marked as
    needing more than this machine: a first line ``# needs ...``, or ``<!-- needs ... -->`` just before it."""
    blocks = []
    for comment, _, body in BLOCK.findall(readme):
        body = textwrap.dedent(body)
        blocks.append((bool(comment) or body.lstrip().startswith(NEEDS), body))
    return blocks


def local_commands(readme: str) -> list[str]:
    """The commands a user runs on this machine: every line of every block not marked as needing more."""
    commands = []
    for needs_more, block in shell_blocks(readme):
        if needs_more:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def user_environment(tmp: Path, local_cache: Path) -> dict[str, str]:
    """A user's shell: uv on PATH (from the template's tools), git identity, nothing of this venv."""
    tools = tmp / "tools-bin"
    tools.mkdir(exist_ok=True)
    for name in ("uv", "uvx"):
        if not (tools / name).exists():
            (tools / name).symlink_to(BIN / name)
    env = {key: value for key, value in os.environ.items() if key not in ISOLATE}
    env.update(
        PATH=f"{tools}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="New Team",
        GIT_AUTHOR_EMAIL="team@example.com",
        GIT_COMMITTER_NAME="New Team",
        GIT_COMMITTER_EMAIL="team@example.com",
        MLOPS_LOCAL_CACHE=str(local_cache),
        UV_PYTHON_DOWNLOADS="never",
    )
    # PySpark's wheel, built once per machine (tools/wheelhouse.py): uv here rebuilt it per project.
    return uv_find_links(env)


def test_local_commands_leave_out_only_marked_blocks():
    readme = textwrap.dedent(
        """\
        ```bash
        cd proj     # a comment
        uv sync
        ```

          ```bash
          # needs a Databricks workspace
          databricks bundle deploy -t dev \\
            --var x=1
          ```

        ```bash
        uv run pytest \\
          -m "not slow"
        ```

        <!-- needs the template's repository -->
        ```bash
        cruft check
        ```
        """
    )
    assert local_commands(readme) == ["cd proj     # a comment", "uv sync", 'uv run pytest    -m "not slow"']


@pytest.fixture(scope="session")
def walkthrough_cache(tmp_path_factory):
    """One local cache (sample table, empty registry) for every walkthrough."""
    return tmp_path_factory.mktemp("mlops_local_cache")


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_generated_readme_works_as_written(tmp_path, walkthrough_cache, pattern):
    """With serving on, so each pattern's scenario also serves and smoke-tests its champion."""
    project = bake(tmp_path / "baked", deployment_pattern=pattern, include_serving_endpoint=True)
    commands = local_commands((project / "README.md").read_text())
    assert commands[0] == f"cd {project.name}" and any(c.startswith("uv sync") for c in commands)
    env = user_environment(tmp_path, walkthrough_cache)
    cwd_file = tmp_path / "cwd"
    cwd = project.parent
    timings = []
    for index, command in enumerate(commands):
        started = time.perf_counter()
        # The quick loop is a subset of `make test`, which the README runs next: the walkthrough
        # checks what it selects (the tests it runs are run once, by `make test`).
        quick_then_full = command.startswith(QUICK_LOOP) and any(c.startswith(FULL_SUITE) for c in commands[index:])
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f'{command}\nstatus=$?\npwd > "{cwd_file}"\nexit $status'],
            cwd=cwd,
            env={**env, "PYTEST_ADDOPTS": "--collect-only -q"} if quick_then_full else env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        timings.append((time.perf_counter() - started, command))
        assert result.returncode == 0, (
            f"README command failed (exit {result.returncode}) in {cwd}:\n  {command}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
        )
        if quick_then_full:
            selected = re.search(r"(\d+)/(\d+) tests collected \((\d+) deselected\)", result.stdout)
            assert selected and int(selected[1]) > 0 and int(selected[3]) > 0, result.stdout[-2000:]
        cwd = Path(cwd_file.read_text().strip())
    assert (project / "uv.lock").is_file() and (project / ".venv").is_dir()
    print(f"\n{pattern}: README commands and their wall times")
    for seconds, command in timings:
        print(f"  {seconds:6.1f}s  {command[:100]}")
