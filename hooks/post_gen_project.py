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
    (
        "include_monitoring",
        (True,),
        (
            "resources/monitoring.yml",
            "src/{package}/monitoring.py",
            "src/{package}/quality_monitor.py",
            "tests/test_monitoring.py",
            "tests/test_quality_monitor.py",
        ),
    ),
    (
        "include_serving_endpoint",
        (True,),
        (
            "resources/model_serving.yml",
            "src/{package}/serving.py",
            "src/mlops_local/scoring_server.py",
            "tests/test_serving.py",
        ),
    ),
    (
        "include_feature_store",
        (True,),
        (
            "resources/feature_engineering_job.yml",
            "src/{package}/features.py",
            "src/{package}/feature_store.py",
            "src/mlops_local/feature_engineering.py",
            "tests/test_features.py",
        ),
    ),
    (
        "deployment_pattern",
        ("deploy_models", "hybrid"),
        ("resources/model_promotion_job.yml", "src/{package}/promotion.py", "tests/test_promotion.py"),
    ),
    ("cicd_platform", ("github_actions",), (".github",)),
    ("cicd_platform", ("azure_devops",), (".azure",)),
    ("cicd_platform", ("gitlab",), (".gitlab-ci.yml",)),
    ("cicd_platform", CI_PLATFORMS, ("docs/ci-setup.md", ".databricks-cli", "ci-requirements.txt")),
    (
        "deployment_pattern",
        ("deploy_models", "hybrid"),
        (".github/workflows/promote.yml", ".azure/pipelines/promote.yml"),
    ),
    (
        "deployment_pattern",
        ("deploy_models",),
        (".azure/pipelines/promote-staging.yml", ".azure/pipelines/templates/databricks-cli.yml"),
    ),
    ("cicd_platform", ("gitlab",), (".gitlab",)),
    ("__monorepo", ("True",), (".gitlab",)),
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


# With project_root other than ".", the CI files a platform reads at the repository root go
# there, named after the project, so that several projects share one repository:
# (path in the baked project, path in the repository with {slug} for project_slug); a
# source ending in / moves everything below it, the rest of the path appended to the target.
ROOT_CI_FILES: tuple[tuple[str, str], ...] = (
    (".github/workflows/", ".github/workflows/{slug}-"),
    (".github/actions/", ".github/actions/{slug}-"),
    (".azure/pipelines/", ".azure/pipelines/{slug}/"),
    (".gitlab-ci.yml", ".gitlab/ci/{slug}.yml"),
    (".gitlab/repository-ci.yml", ".gitlab-ci.yml"),
)


class RelocationRefused(Exception):
    """Baking into the repository would overwrite files that differ."""


def repository_path(relative: str, slug: str) -> tuple[str, bool]:
    """Where a baked file goes: (path, True) relative to the repository root for root CI
    files, else (path, False) relative to the project folder."""
    for source, target in ROOT_CI_FILES:
        if relative == source or (source.endswith("/") and relative.startswith(source)):
            return target.format(slug=slug) + relative[len(source) :], True
    return relative, False


def relocation_plan(baked: Path, repository: Path, project_root: str, slug: str) -> list[tuple[Path, Path]]:
    """(baked file, its place in the repository) for every file of the baked project."""
    moves = []
    for path in sorted(p for p in baked.rglob("*") if p.is_file()):
        relative, at_root = repository_path(path.relative_to(baked).as_posix(), slug)
        moves.append((path, (repository if at_root else repository / project_root) / relative))
    return moves


def collisions(moves: list[tuple[Path, Path]]) -> list[str]:
    """Repository files the plan would overwrite with other content (or replace by a folder)."""
    sources = {source for source, _ in moves}
    problems = []
    for source, target in moves:
        if target == source or target in sources:
            continue
        blocking = [parent for parent in target.parents if parent.is_file()]
        if blocking:
            problems.append(f"{blocking[-1]} is a file, but {target} would be written below it")
        elif target.is_dir():
            problems.append(f"{target} is a folder, but the project has a file there")
        elif target.exists() and target.read_bytes() != source.read_bytes():
            problems.append(f"{target} exists with other content")
    return problems


def relocate(baked: Path, repository: Path, project_root: str, slug: str) -> list[Path]:
    """Move the baked project into ``repository``: its files into ``project_root``, the root
    CI files to the repository root. Checks every target first; refuses (and writes nothing)
    if a file that exists there differs. Returns the files written."""
    moves = relocation_plan(baked, repository, project_root, slug)
    problems = collisions(moves)
    if problems:
        raise RelocationRefused(problems)
    pending = [(target, source.read_bytes(), source.stat().st_mode) for source, target in moves if target != source]
    for source, target in moves:
        if target != source:
            source.unlink()
    for folder in sorted((p for p in baked.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    written = []
    for target, data, mode in pending:
        if target.exists():  # the same content is already there (checked above)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
        written.append(target)
    if baked.is_dir() and not any(baked.iterdir()):
        baked.rmdir()
    return written


def replay_context(ctx: dict) -> dict:
    """The answers as a cookiecutter replay file, without this machine's paths."""
    machine_specific = {"_output_dir", "_repo_dir", "_checkout", "_template"}
    return {"cookiecutter": {key: value for key, value in ctx.items() if key not in machine_specific}}


def main() -> int:
    ctx = json.loads(CONTEXT_JSON)
    project = Path.cwd()
    remove_paths(project, paths_to_remove(ctx))
    if writes_replay_file(ctx):
        # Re-baking with the same answers: cookiecutter --replay-file .cookiecutter-replay.json <template>
        (project / REPLAY_FILE).write_text(json.dumps(replay_context(ctx), indent=2, ensure_ascii=False) + "\n")
    root = ctx.get("project_root", ".")
    if root != ".":
        # cookiecutter baked into <output dir>/<project_slug>; the output dir is the repository.
        try:
            relocate(project, project.parent, root, ctx["project_slug"])
        except RelocationRefused as refused:
            print(
                f"ERROR: the project was not generated: baking it into {project.parent} with "
                f"project_root={root!r} would overwrite files that differ:",
                file=sys.stderr,
            )
            for problem in refused.args[0]:
                print(f"  - {problem}", file=sys.stderr)
            print(
                "Nothing in the repository was changed. Choose another project_root or project_slug, "
                "or move those files away first.",
                file=sys.stderr,
            )
            return 1
        project = project.parent / root
    print(next_steps(project, ctx["project_slug"]))
    return 0


def next_steps(project: Path, package: str) -> str:
    """What to run first, printed at the end of a bake (the generated README.md has the rest)."""
    return "\n".join(
        [
            f"Baked {project}. Next:",
            f"  cd {project}",
            "  uv sync --compile-bytecode               # .venv with the dependencies, and uv.lock",
            '  uv run pytest -m "not slow"              # the quick loop, trains on a small sample',
            "  uv run python -m mlops_local scenario   # the whole pipeline, locally",
            "Then README.md: the local runs, and what to fill in before the first deploy.",
        ]
    )


def writes_replay_file(ctx: dict) -> bool:
    """Plain cookiecutter bakes keep their answers in a replay file; cruft bakes do not.

    cruft records the same answers, with the template commit, in ``.cruft.json`` (it adds
    ``_commit`` to the context before generating). A replay file is what a project baked with
    plain cookiecutter needs for ``cruft link`` and for ``cookiecutter --replay-file``.
    """
    return "_commit" not in ctx


if __name__ == "__main__":
    sys.exit(main())
