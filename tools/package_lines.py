"""Lines per module of the generated job package: what a data scientist changes, and the rest.

    python tools/package_lines.py                      # this template, default answers and all options on
    python tools/package_lines.py --before cedac42     # and the same bakes of an earlier commit

A module counts as *model* code when a data scientist edits or reads it to change the model:
the ML problem (``model.py``), the data it is read from (``data.py``) and the jobs that train,
validate, score and monitor it. The rest is plumbing: registry, promotion, deployment, serving,
the quality monitor, parameters and the runtime switch. The local runner (``src/mlops_local``,
formerly ``src/<package>/local``) is not job code and is counted apart.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bake import TEMPLATE_DIR, bake

MODEL = ("model.py", "data.py", "train.py", "validate.py", "batch_inference.py", "monitoring.py")
ANSWERS = {
    "default answers": {},
    "serving and monitoring on": {"include_serving_endpoint": True, "include_monitoring": True},
}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def measure(project: Path) -> tuple[dict[str, int], int]:
    """Lines per job module, and lines of the local runner."""
    package = project / "src" / project.name
    modules = {p.name: lines(p) for p in sorted(package.glob("*.py"))}
    runner_dir = project / "src" / "mlops_local"
    if not runner_dir.is_dir():
        runner_dir = package / "local"
    return modules, sum(lines(p) for p in runner_dir.rglob("*.py"))


def report(title: str, modules: dict[str, int], runner: int) -> str:
    model = sum(n for name, n in modules.items() if name in MODEL)
    total = sum(modules.values())
    rows = [f"{title}: {model} of {total} lines are model code ({100 * model / total:.0f}%); local runner {runner}"]
    for name, n in sorted(modules.items(), key=lambda item: (item[0] not in MODEL, -item[1])):
        rows.append(f"  {'model' if name in MODEL else 'plumbing':<9} {name:<22} {n:>4}")
    return "\n".join(rows)


def bake_at(commit: str, output: Path, answers: dict) -> Path:
    """Bake ``answers`` with the template as it was at ``commit``."""
    template = output / f"template-{commit}"
    if not template.is_dir():
        template.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=TEMPLATE_DIR, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(template)], input=archive.stdout, check=True)
    from cookiecutter.main import cookiecutter

    out = output / f"{commit}-{len(list(output.iterdir()))}"
    return Path(cookiecutter(str(template), no_input=True, output_dir=str(out), extra_context=answers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/package_lines.py", description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="COMMIT", help="also measure the template at this commit")
    args = parser.parse_args(argv)
    reports = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for label, answers in ANSWERS.items():
            if args.before:
                project = bake_at(args.before, work, answers)
                reports.append(report(f"{args.before}, {label}", *measure(project)))
            project = bake(work / f"now-{len(list(work.iterdir()))}", **answers)
            reports.append(report(f"this template, {label}", *measure(project)))
    print("\n--- Lines per module of the job package ---\n")  # after the bakes' own output
    print("\n\n".join(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
