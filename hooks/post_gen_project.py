"""Remove what the chosen options exclude, from one table.

``CONDITIONAL_PATHS`` is the only place that knows which generated file belongs to
which option. Each row keeps its paths only when the option has one of the listed
values; otherwise the paths are deleted. Paths are relative to the project root and
may use ``{package}`` for the Python package directory name.

The module imports cleanly without cookiecutter, so the table and the helpers are
unit-tested directly.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

CONTEXT_JSON = r"""{{ cookiecutter | jsonify }}"""

CI_PLATFORMS = ("github_actions", "azure_devops", "gitlab")
REPLAY_FILE = ".cookiecutter-replay.json"

# (option, values that keep the paths, paths)
CONDITIONAL_PATHS: tuple[tuple[str, tuple[object, ...], tuple[str, ...]], ...] = (
    ("include_monitoring", (True,), ("resources/monitoring.yml",)),
    ("include_serving_endpoint", (True,), ("resources/model_serving.yml",)),
    ("deployment_pattern", ("deploy_models", "hybrid"), ("resources/model_promotion_job.yml",)),
    ("cicd_platform", ("github_actions",), (".github",)),
    ("cicd_platform", ("azure_devops",), (".azure",)),
    ("cicd_platform", ("gitlab",), (".gitlab-ci.yml",)),
    ("cicd_platform", CI_PLATFORMS, ("docs/ci-setup.md",)),
    (
        "deployment_pattern",
        ("deploy_models", "hybrid"),
        (".github/workflows/promote.yml", ".azure/pipelines/promote.yml"),
    ),
)


def paths_to_remove(ctx: dict) -> list[str]:
    """Return the project-relative paths that the options in ``ctx`` exclude."""
    package = ctx["project_slug"]
    removed = []
    for option, keep_values, paths in CONDITIONAL_PATHS:
        if ctx[option] not in keep_values:
            removed.extend(path.format(package=package) for path in paths)
    return removed


def remove_paths(project_dir: Path, paths: list[str]) -> None:
    for relative in paths:
        path = project_dir / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def replay_context(ctx: dict) -> dict:
    """The answers as a cookiecutter replay file, without this machine's paths."""
    machine_specific = {"_output_dir", "_repo_dir", "_checkout", "_template"}
    return {"cookiecutter": {key: value for key, value in ctx.items() if key not in machine_specific}}


def main() -> int:
    ctx = json.loads(CONTEXT_JSON)
    project = Path.cwd()
    remove_paths(project, paths_to_remove(ctx))
    # Re-baking with the same answers: cookiecutter --replay-file .cookiecutter-replay.json <template>
    (project / REPLAY_FILE).write_text(json.dumps(replay_context(ctx), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
