"""The whole path to production, locally, as CI and the schedules would run it.

The plan is read from the bundle, not from a setting: a target whose configuration has
``model_promotion_job`` gets its model by promotion, one with ``model_training_job``
trains, and prod then runs batch inference and monitoring. So the scenario follows the
deployment pattern the project was generated with, and any change made to the bundle.

When the jobs have a ``serve`` task (serving endpoint included), the scenario then checks
that prod's endpoint (as the stand-in workspace keeps it) serves prod's champion, serves
that champion with MLflow's own scoring server and smoke-tests it
(``scoring_server.check_serving``).

The project's own rules come from its job package: the ``champion`` alias (``names``), the
approval and source tags (``promotion``), the previous-champion tag (``deploy``) and the
headline metric (the first of ``model.THRESHOLDS``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from .bundle import ResolvedBundle, load_bundle, resolve
from .environment import scoring_modules, start_spark_early
from .project import project_module
from .runner import FAILED, SUCCESS, JobRun, LocalRunner

ENVIRONMENTS = ("dev", "staging", "prod")


class ScenarioError(RuntimeError):
    pass


@dataclass
class Step:
    target: str
    job: str
    why: str
    parameters: dict[str, str] | None = None


def resolve_all(config: dict) -> dict[str, ResolvedBundle]:
    """Every target of the bundle, resolved."""
    return {target: resolve(config, target) for target in config["targets"]}


def promotion_source(bundles: dict[str, ResolvedBundle], bundle: ResolvedBundle) -> ResolvedBundle:
    """The target whose catalog ``bundle``'s promotion job copies the model from."""
    catalog = bundle.variables["promotion_source_catalog"]
    return next(b for b in bundles.values() if b.variables["catalog"] == catalog)


def plan(bundles: dict[str, ResolvedBundle]) -> list[Step]:
    steps = []
    for target in ENVIRONMENTS:
        bundle = bundles[target]
        if "model_promotion_job" in bundle.jobs:
            source = promotion_source(bundles, bundle)
            steps.append(
                Step(
                    target,
                    "model_promotion_job",
                    f"promote the {source.target} champion into {bundle.variables['catalog']}",
                    {"source_model": source.model_full_name()},
                )
            )
        elif "model_training_job" in bundle.jobs:
            steps.append(Step(target, "model_training_job", f"train in {bundle.variables['catalog']}"))
        else:
            raise ScenarioError(f"target {target!r} neither trains nor promotes a model")
    steps.append(Step("prod", "batch_inference_job", "score new rows with the prod champion"))
    if "monitoring_job" in bundles["prod"].jobs:
        steps.append(Step("prod", "monitoring_job", "check the predictions for drift"))
    return steps


def approve_copied_version(run: JobRun, bundle: ResolvedBundle, echo: Callable[[str], None]) -> None:
    promotion = project_module("promotion")
    version = run.tasks["copy_model"].values["model_version"]
    model = bundle.model_full_name()
    echo(f"--> The approval gate stopped the promotion before deploy; {model} champion is unchanged.")
    echo(
        f"--> Approving {model} v{version} as a reviewer would ({promotion.APPROVAL_TAG}={promotion.APPROVED}), "
        "then re-running."
    )
    promotion.approve(model, version)


def run_scenario(project_dir: Path, state: Path, echo: Callable[[str], None] = print) -> list[JobRun]:
    start_spark_early(state, scoring_modules())
    config = load_bundle(project_dir)
    bundles = resolve_all(config)
    project_module("runtime").configure_mlflow()
    runs = []
    steps = plan(bundles)
    echo("Local scenario: " + "; ".join(f"{s.target}: {s.job}" for s in steps))
    for number, step in enumerate(steps, 1):
        echo(f"\n[{number}/{len(steps)}] {step.target}: {step.why}")
        runner = LocalRunner(project_dir, bundles[step.target], state, echo)
        run = runner.run(step.job, step.parameters)
        if step.job == "model_promotion_job" and not run.succeeded and _stopped_at_approval(run):
            approve_copied_version(run, bundles[step.target], echo)
            run = runner.run(step.job, step.parameters)
        runs.append(run)
        retrain = run.tasks.get("retrain")
        if retrain is not None and retrain.state == SUCCESS:
            window_end = run.tasks["monitor"].values.get("window_end", "?")
            echo(f"--> Drift found: {step.target} retrained on the rows up to {window_end}, the drifted days included.")
        if not run.succeeded:
            if step.job == "monitoring_job" and _only_failed(run, "retraining_needed"):
                echo("--> Drift found: this target cannot train, so the job failed to alert the team (expected).")
                continue
            raise ScenarioError(f"{step.job} failed in {step.target}: see the task output above")
    serve = serve_task_parameters(bundles["prod"])
    if serve is not None:
        # Only projects generated with the serving endpoint have the scoring server.
        from .scoring_server import ServingError, check_serving

        try:
            check_serving(state, bundles["prod"].model_full_name(), serve["endpoint_name"], echo)
        except ServingError as error:
            raise ScenarioError(str(error)) from None
    return runs


def serve_task_parameters(bundle: ResolvedBundle) -> dict[str, str] | None:
    """The named parameters of the first ``serve`` task of ``bundle``'s jobs, if any."""
    for job in bundle.jobs.values():
        for task in job.get("tasks", []) or []:
            wheel = task.get("python_wheel_task") or {}
            if wheel.get("entry_point") == "serve":
                return wheel.get("named_parameters", {})
    return None


def _only_failed(run: JobRun, task_key: str) -> bool:
    return [t.key for t in run.failures] == [task_key]


def _stopped_at_approval(run: JobRun) -> bool:
    return run.tasks["approval"].state == FAILED and _only_failed(run, "approval")


def mlflow_command() -> str:
    """The ``mlflow`` executable of this environment, which may not be on PATH (e.g. outside ``uv run``)."""
    executable = Path(sys.executable).with_name("mlflow")
    if not executable.is_file():
        return "mlflow"
    relative = os.path.relpath(executable)
    return relative if not relative.startswith("..") else str(executable)


def optional_module(name: str, attribute: str):
    """``attribute`` of the job package's module ``name``, or None when this project has no such module."""
    try:
        return getattr(project_module(name), attribute)
    except ModuleNotFoundError:
        return None


def summary(project_dir: Path, state: Path) -> str:
    """Each target's champion, its metrics and where it came from; where to look next."""
    names, registry = project_module("names"), project_module("registry")
    source_tag, previous_tag = optional_module("promotion", "SOURCE_TAG"), project_module("deploy").PREVIOUS
    headline = next(iter(project_module("model").THRESHOLDS))
    config = load_bundle(project_dir)
    project_module("runtime").configure_mlflow()
    client = MlflowClient()
    lines = ["", "Champions by catalog:"]
    for target, bundle in resolve_all(config).items():
        model = names.ModelRef.parse(bundle.model_full_name())
        champion = registry.alias_version(client, model, names.CHAMPION)
        if champion is None:
            lines.append(f"  {target:<8} {model.full_name}: no champion")
            continue
        version = registry.get_version(client, model, champion)
        tags = version.tags
        origin = (
            f"copied from {tags[source_tag]}"
            if source_tag in tags
            else f"trained in {tags.get('trained_in', model.catalog)} on data to {tags.get('training_end_date', '?')}"
        )
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        value = metrics.get(f"holdout_{headline}")
        figures = f"{headline} {value:.5f}" if value is not None else "no metrics"
        previous = tags.get(previous_tag, "none")
        previous = previous if previous == "none" else f"v{previous}"
        lines.append(
            f"  {target:<8} {model.full_name} v{version.version}: {origin}; {figures}; previous champion {previous}"
        )
    lines += feature_table_lines(state, resolve_all(config))
    lines += [
        "",
        f"Local state: {state}",
        f"Browse runs and models: {mlflow_command()} ui --backend-store-uri sqlite:///{state / 'mlflow.db'}",
    ]
    return "\n".join(lines)


def feature_table_lines(state: Path, bundles: dict[str, ResolvedBundle]) -> list[str]:
    """Per target, the feature tables its jobs wrote, read and published (the feature-engineering stand-in's log)."""
    log = state / "feature_tables.jsonl"  # written by the local feature-engineering stand-in
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    lines = ["", "Feature tables by target (written / read):"]
    for target, bundle in bundles.items():
        prefix = f"{bundle.variables['catalog']}."
        mine = [e for e in entries if e["table"].startswith(prefix)]
        written = sorted({e["table"] for e in mine if e["action"] == "write"})
        read = sorted({e["table"] for e in mine if e["action"] == "read"})
        published = sorted({e["table"] for e in mine if e["action"] == "publish"})  # online tables
        online = f"; published {', '.join(published)}" if published else ""
        lines.append(f"  {target:<8} wrote {', '.join(written) or 'none'}; read {', '.join(read) or 'none'}{online}")
    return lines
