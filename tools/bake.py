"""Bake the template from Python, for the tests, the demo and the benchmark.

python tools/bake.py --update-snapshots     rewrite tests/snapshots/ from fresh bakes
python tools/bake.py -o DIR [KEY=VALUE ...]  bake one project into DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
SNAPSHOT_DIR = TEMPLATE_DIR / "tests" / "snapshots"
# The option combinations kept as golden output under tests/snapshots/<name>/ (the whole
# project tree), compared with a fresh bake by tests/test_snapshots.py.
SNAPSHOTS: dict[str, dict[str, object]] = {
    "defaults": {},
    "deploy_models-gitlab-serving": {
        "deployment_pattern": "deploy_models",
        "cicd_platform": "gitlab",
        "include_serving_endpoint": True,
    },
    "hybrid-azure_devops-classic": {
        "deployment_pattern": "hybrid",
        "cicd_platform": "azure_devops",
        "compute": "classic",
    },
}


def bake(output_dir: Path, **answers: object) -> Path:
    """Generate a project into ``output_dir`` with ``answers``; return its directory."""
    output_dir.mkdir(parents=True, exist_ok=True)
    project = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context={key: value for key, value in answers.items()},
        output_dir=str(output_dir),
        overwrite_if_exists=False,
    )
    return Path(project)


def rebake(output_dir: Path, **answers: object) -> Path:
    """Like ``bake``, but start from an empty ``output_dir``."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    return bake(output_dir, **answers)


def project_env(project: Path, state: Path | None = None) -> dict[str, str]:
    """Environment to run a baked project's code with this interpreter, without installing it.

    ``state`` is the local-run folder (MLOPS_LOCAL_DIR); None leaves the project's default.
    """
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "PYSPARK_PYTHON": sys.executable}
    env["MLOPS_LOCAL_PROJECT"] = str(project)  # its stand_in.py makes the local source tables
    env.pop("MLOPS_LOCAL_DIR", None)
    if state is not None:
        env["MLOPS_LOCAL_DIR"] = str(state)
    return env


def project_files(project: Path) -> dict[str, bytes]:
    """Every file of a baked project by its path relative to the project (no bytecode caches)."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def update_snapshots() -> list[Path]:
    """Bake each of ``SNAPSHOTS`` afresh and replace its folder under tests/snapshots/."""
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, answers in SNAPSHOTS.items():
            project = bake(Path(tmp) / name, **answers)
            target = SNAPSHOT_DIR / name
            if target.exists():
                shutil.rmtree(target)
            for relative, data in project_files(project).items():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                (target / relative).write_bytes(data)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/bake.py", description=__doc__.split("\n")[0])
    parser.add_argument("--update-snapshots", action="store_true", help="rewrite tests/snapshots/ from fresh bakes")
    parser.add_argument("-o", "--output-dir", type=Path, help="bake one project into this folder")
    parser.add_argument("answers", nargs="*", metavar="KEY=VALUE", help="answers for -o (others take their defaults)")
    args = parser.parse_args(argv)
    if args.update_snapshots:
        for folder in update_snapshots():
            print(f"wrote {folder.relative_to(TEMPLATE_DIR)}")
        return 0
    if args.output_dir is None:
        parser.error("give --update-snapshots, or -o DIR to bake one project")
    answers = {}
    for item in args.answers:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"{item!r}: expected KEY=VALUE")
        answers[key] = value
    print(bake(args.output_dir, **answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
