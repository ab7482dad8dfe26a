"""Command line of the local runner.

python -m mlops_local run model_training_job --target dev
python -m mlops_local run model_promotion_job --target prod --param source_version=3
python -m mlops_local scenario      # the whole path to production
python -m mlops_local summary       # champions per catalog
python -m mlops_local approve <catalog>.<schema>.<model> <version>
python -m mlops_local reset         # forget all local state
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from .bundle import BundleError, load_bundle, resolve
from .environment import freeze_heap, start_spark_early
from .project import activate, find_project_dir, problem_changed, project_module, state_dir
from .rules import check
from .runner import LocalRunner, check_wheel_tasks


def _pairs(values: list[str], option: str) -> dict[str, str]:
    result = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option} {value!r}: expected NAME=VALUE")
        result[key] = item
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__.split("\n")[0])
    parser.add_argument("--project-dir", help="project folder (default: the nearest with a databricks.yml)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one job of a target, as the bundle defines it")
    run.add_argument("job", help="job resource key, e.g. model_training_job")
    run.add_argument("-t", "--target", help="bundle target (default: the bundle's default target)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="job parameter")
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="bundle variable")

    validate = commands.add_parser(
        "validate", help="resolve every target, check every task's parameters and the CLI's deploy-time rules"
    )
    validate.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="bundle variable")

    commands.add_parser("scenario", help="train, promote, score and monitor across all targets")
    commands.add_parser("summary", help="show each catalog's champion and where it came from")

    approve = commands.add_parser("approve", help="tag a model version approval=approved, as a reviewer would")
    approve.add_argument("model", help="<catalog>.<schema>.<model>")
    approve.add_argument("version")

    commands.add_parser("reset", help="delete all local state (registry, artifacts, tables)")
    return parser


def validate(project, variables: dict[str, str]) -> int:
    """An offline ``databricks bundle validate --strict`` for every target.

    References, task parameters, and the CLI's deploy-time rules (``rules.py``).
    """
    try:
        config = load_bundle(project)
        bundles = {}
        for target in config["targets"]:
            bundle = bundles[target] = resolve(config, target, variables, project_dir=project)
            check_wheel_tasks(project, bundle)
            jobs = ", ".join(sorted(bundle.jobs)) or "no jobs"
            print(f"{target:<8} {bundle.mode or 'default':<12} {bundle.variables['catalog']:<10} {jobs}")
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    findings = check(bundles)
    for finding in findings:
        print(f"error: {finding}", file=sys.stderr)
    if findings:
        print(f"{len(findings)} deploy-time rule(s) broken (each rule's source: mlops_local/rules.py)", file=sys.stderr)
        return 1
    print("Bundle OK: every reference resolves, every task's parameters are accepted, no deploy-time rule is broken.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        project = find_project_dir(args.project_dir)
    except FileNotFoundError as error:
        print(f"error: {error} (or pass --project-dir)", file=sys.stderr)
        return 1
    if args.command == "validate":
        return validate(project, _pairs(args.var, "--var"))
    if args.command == "reset":
        folder = state_dir(project)
        shutil.rmtree(folder, ignore_errors=True)
        print(f"Removed {folder}")
        return 0
    state = activate(project)
    if args.command in ("run", "scenario"):
        start_spark_early(state)  # the JVM starts while MLflow and the job code import
    from .scenario import ScenarioError, run_scenario, summary  # imports MLflow: seconds

    changed = problem_changed(state) if args.command in ("run", "scenario") else None
    if changed:
        print(
            f"Note: model.py's problem changed since the last local run ({changed}). The local models and "
            f"tables in {state} were made for the old one; if a job fails on them, start afresh with "
            "python -m mlops_local reset.",
            file=sys.stderr,
        )
    started = time.perf_counter()
    JobError = project_module("runtime").JobError
    try:
        if args.command == "run":
            bundle = resolve(load_bundle(project), args.target, _pairs(args.var, "--var"), project_dir=project)
            run = LocalRunner(project, bundle, state).run(args.job, _pairs(args.param, "--param"))
            print(summary(project, state))
            return 0 if run.succeeded else 1
        if args.command == "scenario":
            run_scenario(project, state)
            print(summary(project, state))
            print(f"\nScenario finished in {time.perf_counter() - started:.0f}s")
            return 0
        if args.command == "summary":
            print(summary(project, state))
            return 0
        if args.command == "approve":
            try:
                promotion = project_module("promotion")
            except ModuleNotFoundError:
                print("error: this project promotes no models, so it has no approval to give", file=sys.stderr)
                return 1
            project_module("runtime").configure_mlflow()
            promotion.approve(args.model, args.version)
            print(f"{args.model} v{args.version}: {promotion.APPROVAL_TAG}={promotion.APPROVED}")
            return 0
    except (BundleError, ScenarioError, JobError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    status = main()
    freeze_heap(collect=False)  # exit without walking every object once more
    sys.exit(status)
