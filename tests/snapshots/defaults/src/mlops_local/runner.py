"""Run a bundle job on this machine, task by task, as Databricks would.

Tasks run in dependency order. ``python_wheel_task`` calls the entry point that
``[project.scripts]`` names, with ``named_parameters`` as ``--name=value`` (checked
against the entry point's own parser first); ``condition_task`` compares its operands
after job-run values (``{{tasks.<key>.values.<name>}}``, ``{{job.parameters.<name>}}``)
are filled in; ``run_job_task`` runs another job of the same target; ``depends_on``
outcomes and ``run_if`` decide what runs. Entry points run in this process and share
one Spark session; their task values come back through ``environment.task_value_sink``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import io
import itertools
import os
import re
import time
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import environment
from .bundle import BundleError, ResolvedBundle
from .project import LOCAL_DIR_ENV, project_module

DYNAMIC = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
SUCCESS, FAILED, EXCLUDED, UPSTREAM_FAILED = "SUCCESS", "FAILED", "EXCLUDED", "UPSTREAM_FAILED"
RUN_IF = {
    "ALL_SUCCESS": lambda s: all(x == SUCCESS for x in s),
    "ALL_DONE": lambda s: True,
    "NONE_FAILED": lambda s: not any(x in (FAILED, UPSTREAM_FAILED) for x in s),
    "AT_LEAST_ONE_SUCCESS": lambda s: any(x == SUCCESS for x in s),
    "ALL_FAILED": lambda s: all(x in (FAILED, UPSTREAM_FAILED) for x in s),
    "AT_LEAST_ONE_FAILED": lambda s: any(x in (FAILED, UPSTREAM_FAILED) for x in s),
}
CONDITIONS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL_TO": lambda a, b: a == b,
    "NOT_EQUAL": lambda a, b: a != b,
    "GREATER_THAN": lambda a, b: a > b,
    "GREATER_THAN_OR_EQUAL": lambda a, b: a >= b,
    "LESS_THAN": lambda a, b: a < b,
    "LESS_THAN_OR_EQUAL": lambda a, b: a <= b,
}
_run_ids = itertools.count(1)


class TaskConfigError(BundleError):
    """A task cannot run as configured (unknown entry point, parameter, reference)."""


@dataclass
class TaskResult:
    key: str
    state: str
    seconds: float = 0.0
    message: str = ""
    outcome: str | None = None  # "true"/"false" for condition tasks
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRun:
    job_key: str
    target: str
    run_id: int
    tasks: dict[str, TaskResult]
    seconds: float

    @property
    def succeeded(self) -> bool:
        return not any(t.state in (FAILED, UPSTREAM_FAILED) for t in self.tasks.values())

    @property
    def failures(self) -> list[TaskResult]:
        return [t for t in self.tasks.values() if t.state == FAILED]


# --- Entry points ------------------------------------------------------------------------


def entry_points(project_dir: Path) -> tuple[str, dict[str, str]]:
    """The package name and ``[project.scripts]`` of the project."""
    data = tomllib.loads((Path(project_dir) / "pyproject.toml").read_text())
    project = data["project"]
    return project["name"].replace("-", "_"), dict(project.get("scripts", {}))


def load_entry_point(target: str) -> Callable[..., Any]:
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def wheel_task_argv(task: dict[str, Any]) -> list[str]:
    wheel = task["python_wheel_task"]
    if "named_parameters" in wheel:
        return [f"--{name}={value}" for name, value in wheel["named_parameters"].items()]
    return [str(value) for value in wheel.get("parameters", [])]


def with_job_parameters(argv: list[str], job_parameters: dict[str, str]) -> list[str]:
    """``argv`` with ``{{job.parameters.<name>}}`` replaced by the values in ``job_parameters``."""

    def replace(match: re.Match) -> str:
        parts = match.group(1).split(".")
        if parts[:2] == ["job", "parameters"] and len(parts) == 3 and parts[2] in job_parameters:
            return job_parameters[parts[2]]
        return match.group(0)

    return [DYNAMIC.sub(replace, arg) for arg in argv]


def job_parameter_defaults(job: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: str(p.get("default", "")) for p in job.get("parameters", []) or []}


def check_wheel_task(
    project_dir: Path, job_key: str, task: dict[str, Any], job_parameters: dict[str, str] | None = None
) -> Callable[..., Any]:
    """The task's entry point, after checking that it exists and accepts the parameters.

    Job parameter references are checked with ``job_parameters`` filled in (the values of a
    run, or the job's defaults), so a parameter with a fixed set of values is checked too.
    """
    package, scripts = entry_points(project_dir)
    wheel = task["python_wheel_task"]
    where = f"job {job_key!r}, task {task['task_key']!r}"
    if wheel.get("package_name") != package:
        raise TaskConfigError(f"{where}: package_name {wheel.get('package_name')!r} is not this project ({package!r})")
    entry = wheel.get("entry_point")
    if entry not in scripts:
        raise TaskConfigError(f"{where}: entry_point {entry!r} is not in [project.scripts] of pyproject.toml")
    function = load_entry_point(scripts[entry])
    build_parser = getattr(function, "build_parser", None)
    if build_parser is None:
        raise TaskConfigError(f"{where}: {scripts[entry]} has no build_parser (decorate it with params.entry_point)")
    parser: argparse.ArgumentParser = build_parser()
    known = {option for action in parser._actions for option in action.option_strings}
    for name in wheel.get("named_parameters") or {}:
        if f"--{name}" not in known:
            raise TaskConfigError(f"{where}: parameter {name!r} is not accepted by entry point {entry!r}")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parser.parse_args(with_job_parameters(wheel_task_argv(task), job_parameters or {}))
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else "invalid"
        raise TaskConfigError(f"{where}: parameters rejected by entry point {entry!r}: {message}") from None
    return function


def check_wheel_tasks(project_dir: Path, bundle: ResolvedBundle) -> int:
    """Check every ``python_wheel_task`` of every job of ``bundle``; return how many were checked."""
    checked = 0
    for job_key, job in bundle.jobs.items():
        for task in job.get("tasks", []) or []:
            if "python_wheel_task" in task:
                check_wheel_task(project_dir, job_key, task, job_parameter_defaults(job))
                checked += 1
    return checked


def task_order(job_key: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks sorted so that each comes after everything it depends on."""
    by_key = {task["task_key"]: task for task in tasks}
    order: list[dict[str, Any]] = []
    state: dict[str, str] = {}

    def visit(key: str, chain: tuple[str, ...]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise TaskConfigError(f"job {job_key!r}: tasks depend on each other in a cycle: {' -> '.join(chain)}")
        if key not in by_key:
            raise TaskConfigError(f"job {job_key!r}: task {chain[-2]!r} depends on unknown task {key!r}")
        state[key] = "visiting"
        for dep in by_key[key].get("depends_on", []) or []:
            visit(dep["task_key"], (*chain, dep["task_key"]))
        state[key] = "done"
        order.append(by_key[key])

    for key in by_key:
        visit(key, (key,))
    return order


# --- Running -------------------------------------------------------------------------------


class LocalRunner:
    """Runs the jobs of one resolved target in this process."""

    def __init__(self, project_dir: Path, bundle: ResolvedBundle, state_dir: Path, echo: Callable[[str], None] = print):
        self.project_dir = Path(project_dir)
        self.bundle = bundle
        self.state_dir = Path(state_dir)
        self.echo = echo

    def run(self, job_key: str, parameters: dict[str, str] | None = None, depth: int = 0) -> JobRun:
        job = self.bundle.job(job_key)
        declared = job_parameter_defaults(job)
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise TaskConfigError(f"job {job_key!r} has no parameter {names} (it has: {', '.join(declared) or 'none'})")
        job_parameters = {**declared, **(parameters or {})}
        run_id = next(_run_ids)
        indent = "  " * depth
        self.echo(f"{indent}=== {job_key} [{self.bundle.target}] {job.get('name', '')} (run {run_id})")
        started = time.perf_counter()
        context = {
            "job_key": job_key,
            "run_id": run_id,
            "parameters": job_parameters,
            "started": dt.datetime.now(dt.UTC),
        }
        results: dict[str, TaskResult] = {}
        for task in task_order(job_key, job.get("tasks", []) or []):
            result = self._run_task(job_key, task, results, context, depth)
            results[task["task_key"]] = result
            detail = f" -> {result.outcome}" if result.outcome else ""
            self.echo(f"{indent}  {result.state:<15} {task['task_key']}{detail} ({result.seconds:.1f}s)")
            if result.state == FAILED and result.message:
                for line in result.message.splitlines():
                    self.echo(f"{indent}      {line}")
        run = JobRun(job_key, self.bundle.target, run_id, results, time.perf_counter() - started)
        verdict = "succeeded" if run.succeeded else "FAILED"
        self.echo(f"{indent}=== {job_key} [{self.bundle.target}] {verdict} in {run.seconds:.1f}s")
        return run

    def _should_run(self, task: dict[str, Any], results: dict[str, TaskResult]) -> str | None:
        """None when the task runs; else the state it ends in without running."""
        deps = task.get("depends_on", []) or []
        if not deps:
            return None
        states = []
        for dep in deps:
            upstream = results[dep["task_key"]]
            if "outcome" in dep:
                if upstream.state != SUCCESS or upstream.outcome != str(dep["outcome"]).lower():
                    states.append(EXCLUDED if upstream.state in (SUCCESS, EXCLUDED) else upstream.state)
                    continue
            states.append(upstream.state)
        run_if = task.get("run_if", "ALL_SUCCESS")
        if RUN_IF[run_if](states):
            return None
        return UPSTREAM_FAILED if any(s in (FAILED, UPSTREAM_FAILED) for s in states) else EXCLUDED

    def _fill(
        self, value: str, job_key: str, task_key: str, name: str, results: dict[str, TaskResult], context: dict
    ) -> str:
        def replace(match: re.Match) -> str:
            ref = match.group(1)
            parts = ref.split(".")
            where = f"job {job_key!r}, task {task_key!r}, parameter {name!r}"
            if parts[:2] == ["job", "parameters"] and len(parts) == 3:
                if parts[2] not in context["parameters"]:
                    raise TaskConfigError(f"{where}: {{{{{ref}}}}} names no job parameter")
                return context["parameters"][parts[2]]
            if parts[0] == "tasks" and len(parts) == 4 and parts[2] == "values":
                upstream = results.get(parts[1])
                if upstream is None or parts[3] not in upstream.values:
                    raise TaskConfigError(
                        f"{where}: {{{{{ref}}}}} has no value (task {parts[1]!r} did not set {parts[3]!r})"
                    )
                return upstream.values[parts[3]]
            simple = {
                "job.id": f"local:{job_key}",
                "job.run_id": str(context["run_id"]),
                "task.name": task_key,
                "bundle.target": self.bundle.target,
                "job.start_time.iso_date": context["started"].date().isoformat(),
                "job.start_time.iso_datetime": context["started"].isoformat(timespec="seconds"),
            }
            if ref in simple:
                return simple[ref]
            raise TaskConfigError(f"{where}: unsupported job-run value {{{{{ref}}}}}")

        return DYNAMIC.sub(replace, value)

    def _run_task(
        self, job_key: str, task: dict, results: dict[str, TaskResult], context: dict, depth: int
    ) -> TaskResult:
        key = task["task_key"]
        skipped = self._should_run(task, results)
        if skipped:
            return TaskResult(key, skipped)
        environment.freeze_heap()  # what earlier tasks imported stays out of this task's collections
        started = time.perf_counter()
        try:
            if "python_wheel_task" in task:
                result = self._wheel_task(job_key, task, results, context)
            elif "condition_task" in task:
                result = self._condition_task(job_key, task, results, context)
            elif "run_job_task" in task:
                result = self._run_job_task(job_key, task, results, context, depth)
            else:
                kinds = [k for k in task if k.endswith("_task")]
                raise TaskConfigError(f"job {job_key!r}, task {key!r}: {kinds} cannot run locally")
        except TaskConfigError:
            raise
        except Exception as error:  # a task failure: record it and go on like Databricks
            for_the_user = isinstance(error, project_module("runtime").JobError)
            message = str(error) if for_the_user else traceback.format_exc().strip()
            result = TaskResult(key, FAILED, message=message)
        result.seconds = time.perf_counter() - started
        return result

    def _wheel_task(self, job_key: str, task: dict, results: dict[str, TaskResult], context: dict) -> TaskResult:
        key = task["task_key"]
        function = check_wheel_task(self.project_dir, job_key, task, context["parameters"])
        argv = [
            self._fill(arg, job_key, key, arg.split("=", 1)[0].lstrip("-"), results, context)
            for arg in wheel_task_argv(task)
        ]
        values: dict[str, str] = {}
        previous_sink = environment.task_value_sink
        environment.task_value_sink = values.__setitem__
        os.environ[LOCAL_DIR_ENV] = str(self.state_dir)
        try:
            function(argv)
        finally:
            environment.task_value_sink = previous_sink
            import mlflow

            while mlflow.active_run():
                mlflow.end_run("FAILED")
        return TaskResult(key, SUCCESS, values=values)

    def _condition_task(self, job_key: str, task: dict, results: dict[str, TaskResult], context: dict) -> TaskResult:
        key = task["task_key"]
        condition = task["condition_task"]
        op = condition.get("op")
        if op not in CONDITIONS:
            raise TaskConfigError(f"job {job_key!r}, task {key!r}: unknown condition op {op!r}")
        left = self._fill(str(condition.get("left", "")), job_key, key, "left", results, context)
        right = self._fill(str(condition.get("right", "")), job_key, key, "right", results, context)
        if op not in ("EQUAL_TO", "NOT_EQUAL"):
            try:
                left, right = float(left), float(right)
            except ValueError:
                raise TaskConfigError(
                    f"job {job_key!r}, task {key!r}: {op} needs numbers, got {left!r} and {right!r}"
                ) from None
        outcome = "true" if CONDITIONS[op](left, right) else "false"
        return TaskResult(key, SUCCESS, outcome=outcome)

    def _run_job_task(
        self, job_key: str, task: dict, results: dict[str, TaskResult], context: dict, depth: int
    ) -> TaskResult:
        key = task["task_key"]
        spec = task["run_job_task"]
        job_id = str(spec.get("job_id", ""))
        if not job_id.startswith("local:"):
            raise TaskConfigError(f"job {job_key!r}, task {key!r}: job_id {job_id!r} is not a job of this bundle")
        parameters = {
            name: self._fill(str(value), job_key, key, name, results, context)
            for name, value in (spec.get("job_parameters") or {}).items()
        }
        child = self.run(job_id.removeprefix("local:"), parameters, depth + 1)
        if not child.succeeded:
            failed = ", ".join(t.key for t in child.failures)
            return TaskResult(key, FAILED, message=f"job {child.job_key} failed (tasks: {failed})")
        return TaskResult(key, SUCCESS)
