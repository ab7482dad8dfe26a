"""The `databricks` command sequences of a baked project's CI jobs, as each platform runs them.

For every job of every CI file that runs the Databricks CLI, in file order: its steps that
call ``databricks`` (the CLI's own install or build step aside), each as the shell script the
platform would run, with the environment the platform would give it. Platform expressions
(``${{ ... }}``, ``$(...)`` macros, ``${{ parameters.x }}``) are filled in with the values a
pull request, a push or a manual run would have; ``inputs`` stand for a manual run's answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DATABRICKS_COMMAND = re.compile(
    r"(^|[\s(|;&$])databricks\s+(bundle|model-versions|serving-endpoints|workspace|jobs|experiments|registered-models)\b"
)
INSTALLS_THE_CLI = re.compile(r"go (-C \S+ )?build|go install|releases/download|install -m 0755")
GITHUB_SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]  # GitHub's `run:` default on Linux
AZURE_SHELL = ["bash", "--noprofile", "--norc"]  # Azure's `script:`/AzureCLI@2 bash: no -e
GITLAB_SHELL = ["bash", "-eo", "pipefail"]  # the GitLab runner's bash scripts


@dataclass
class Step:
    name: str
    script: str
    shell: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class CiJob:
    file: str
    name: str
    steps: list[Step]

    def __str__(self) -> str:
        return f"{self.file}:{self.name}"


def runs_databricks(script: str) -> bool:
    return bool(DATABRICKS_COMMAND.search(script)) and not INSTALLS_THE_CLI.search(script)


def _strings(env: dict) -> dict[str, str]:
    out = {}
    for key, value in (env or {}).items():
        if isinstance(value, dict):  # GitLab: {value:, description:}
            value = value.get("value", "")
        out[str(key)] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _in_order(paths, order: list[str]) -> list[Path]:
    """The files named in ``order`` in that order (the order CI runs them), then the rest by name."""
    return sorted(paths, key=lambda p: (p.name not in order, order.index(p.name) if p.name in order else 0, p.name))


# --- GitHub Actions ---------------------------------------------------------------------


OUTPUT_PLACEHOLDER = "@@step-output:{}@@"


def fill_outputs(text: str, output_file: str) -> str:
    """Write into ``text`` the step outputs (``name=value`` lines of ``$GITHUB_OUTPUT``) that a
    job's `needs.<job>.outputs.<name>` took from jobs that ran before it: the last value wins."""
    lines = Path(output_file).read_text().splitlines() if Path(output_file).exists() else []

    def value(m: re.Match) -> str:
        found = [line.split("=", 1)[1] for line in lines if line.startswith(m.group(1) + "=")]
        return found[-1] if found else ""

    return re.sub(re.escape(OUTPUT_PLACEHOLDER).replace(r"\{\}", r"(\w+)"), value, text)


def github_jobs(project: Path, inputs: dict[str, str], head: str) -> list[CiJob]:
    context = {
        "github.event.pull_request.number": "7",
        "github.run_id": "100",
        "github.run_number": "1",
        "github.run_attempt": "1",
        "github.server_url": "https://github.com",
        "github.repository": "example/project",
        "github.actor": "reviewer",
        "github.triggering_actor": "reviewer",
        "github.sha": head,
        "github.ref_name": "main",
        "steps.reviewer.outputs.login": "reviewer",
    }

    outputs: dict[tuple[str, str], str] = {}  # (job, output) -> the step output it passes on

    def fill(text: str) -> str:
        def value(m: re.Match) -> str:
            expr = m.group(1).strip()
            if expr.startswith("inputs."):
                return inputs.get(expr.removeprefix("inputs."), "")
            needed = re.fullmatch(r"needs\.([\w-]+)\.outputs\.(\w+)", expr)
            if needed and (needed.group(1), needed.group(2)) in outputs:
                # read when the step runs, from the step outputs the earlier jobs wrote
                return OUTPUT_PLACEHOLDER.format(outputs[needed.group(1), needed.group(2)])
            return context.get(expr, "")

        return re.sub(r"\$\{\{(.*?)\}\}", value, text)

    order = ["ci.yml", "cd.yml", "promote.yml", "sweep.yml"]
    files = _in_order((project / ".github" / "workflows").glob("*.yml"), order)
    jobs = []
    for path in files:
        workflow = yaml.safe_load(path.read_text())
        outputs.clear()
        for key, job in (workflow.get("jobs") or {}).items():
            for name, expr in (job.get("outputs") or {}).items():
                step_output = re.search(r"steps\.[\w-]+\.outputs\.(\w+)", str(expr))
                if step_output:
                    outputs[key, name] = step_output.group(1)
        for key, job in (workflow.get("jobs") or {}).items():
            env = {**_strings(workflow.get("env")), **_strings(job.get("env"))}
            steps = [
                Step(
                    step.get("name", "run"),
                    fill(step["run"]),
                    GITHUB_SHELL,
                    {k: fill(v) for k, v in {**env, **_strings(step.get("env"))}.items()},
                )
                for step in job.get("steps", [])
                if "run" in step and runs_databricks(step["run"])
            ]
            if steps:
                jobs.append(CiJob(path.name, key, steps))
    return jobs


# --- Azure DevOps -----------------------------------------------------------------------


def azure_jobs(project: Path, inputs: dict[str, str], head: str) -> list[CiJob]:
    predefined = {
        "System.PullRequest.PullRequestId": "7",
        "System.PullRequest.PullRequestNumber": "7",
        "Build.BuildId": "100",
        "Build.BuildNumber": "1",
        "Build.SourceBranch": "refs/heads/main",
        "Build.SourceBranchName": "main",
        "Build.SourceVersion": head,
        "Build.SourcesDirectory": str(project),
        "Build.Reason": "Manual",
        "Build.RequestedFor": "reviewer",
        "Build.RequestedForId": "reviewer",
        "System.DefaultWorkingDirectory": str(project),
        "System.CollectionUri": "https://dev.azure.com/example/",
        "System.TeamProject": "project",
        "System.TeamProjectId": "11111111-2222-3333-4444-555555555555",
        "System.CollectionId": "66666666-7777-8888-9999-000000000000",
        "System.AccessToken": "",
        "System.DefinitionId": "1",
        "Pipeline.Workspace": str(project.parent / "pipeline"),
        "Resources.Pipeline.promoteStaging.SourceBranch": "refs/heads/main",  # the staging promotion's run
        "Agent.TempDirectory": str(project.parent / "agent-temp"),
    }

    def env_name(name: str) -> str:
        return name.upper().replace(".", "_")

    order = ["ci.yml", "cd.yml", "promote-staging.yml", "cd-prod.yml", "promote.yml", "sweep.yml"]
    files = _in_order((project / ".azure" / "pipelines").glob("*.yml"), order)
    jobs = []
    for path in files:
        pipeline = yaml.safe_load(path.read_text())
        parameters = {
            p["name"]: inputs.get(p["name"], str(p.get("default", ""))) for p in pipeline.get("parameters", [])
        }

        def fill(text: str, variables: dict[str, str], parameters: dict[str, str] = parameters) -> str:
            text = re.sub(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", lambda m: parameters.get(m.group(1), ""), text)
            known = {**predefined, **variables}
            return re.sub(r"\$\(([A-Za-z_][\w.]*)\)", lambda m: known.get(m.group(1), m.group(0)), text)

        top = _variables(pipeline.get("variables"))
        for stage in pipeline.get("stages") or [{"jobs": pipeline.get("jobs", [])}]:
            for job in stage.get("jobs", []):
                variables = {**top, **_variables(stage.get("variables")), **_variables(job.get("variables"))}
                variables = {k: stage_output(fill(v, {})) for k, v in variables.items()}
                base_env = {env_name(k): v for k, v in {**predefined, **variables}.items()}
                raw_steps = job.get("steps") or (
                    job.get("strategy", {}).get("runOnce", {}).get("deploy", {}).get("steps", [])
                )
                steps = []
                workspace = predefined["Pipeline.Workspace"]
                store = project.parent / "artifacts"  # what publish steps keep for later pipelines
                for step in raw_steps:
                    if "publish" in step:  # Azure keeps the folder as a named artifact
                        source = fill(step["publish"], variables)
                        kept = f'"{store}/{step["artifact"]}"'
                        copy = f'mkdir -p "{store}" && rm -rf {kept} && cp -r "{source}" {kept}'
                        steps.append(Step(f"publish {step['artifact']}", copy, AZURE_SHELL, base_env))
                        continue
                    if "download" in step:  # into $(Pipeline.Workspace)/<pipeline alias>/<artifact>
                        folder = workspace if step["download"] == "current" else f"{workspace}/{step['download']}"
                        copy = f'mkdir -p "{folder}" && cp -r "{store}/{step["artifact"]}" "{folder}/"'
                        steps.append(Step(f"download {step['artifact']}", copy, AZURE_SHELL, base_env))
                        continue
                    script = step.get("script") or step.get("bash")
                    inputs_ = step.get("inputs") or {}
                    if script is None and str(step.get("task", "")).startswith("AzureCLI@"):
                        script = inputs_.get("inlineScript")
                    if script is None or not runs_databricks(script):
                        continue
                    env = {**base_env, **{k: fill(v, variables) for k, v in _strings(step.get("env")).items()}}
                    steps.append(Step(step.get("displayName", "script"), fill(script, variables), AZURE_SHELL, env))
                if any(runs_databricks(step.script) for step in steps):
                    jobs.append(CiJob(path.name, job.get("job") or job.get("deployment"), steps))
    return jobs


# `$[ stageDependencies.<stage>.<job>.outputs['<step>.<name>'] ]`: groups stage, job, step, name.
STAGE_OUTPUT = re.compile(r"^\$\[\s*stageDependencies\.(\w+)\.(\w+)\.outputs\['(\w+)\.(\w+)'\]\s*\]$")
SET_OUTPUT = re.compile(r"^##vso\[task\.setvariable variable=(\w+);isOutput=true\](.*)$", re.MULTILINE)


def stage_output(value: str) -> str:
    """Azure DevOps: a variable taken from an earlier stage's output variable
    (`$[ stageDependencies.<stage>.<job>.outputs['<step>.<name>'] ]`) reads, when its step runs,
    the value an earlier step set with `##vso[task.setvariable variable=<name>;isOutput=true]`
    (``record_outputs`` keeps those beside GitHub's step outputs)."""
    m = STAGE_OUTPUT.match(value.strip())
    return OUTPUT_PLACEHOLDER.format(m.group(4)) if m else value


def record_outputs(stdout: str, output_file: str) -> None:
    """Keep the output variables an Azure DevOps step set (its `##vso[task.setvariable ...;isOutput=true]`
    lines) as ``name=value`` lines of ``output_file``, where ``fill_outputs`` reads them."""
    found = SET_OUTPUT.findall(stdout)
    if found and output_file:
        with open(output_file, "a") as out:
            out.writelines(f"{name}={value.strip()}\n" for name, value in found)


def _variables(value) -> dict[str, str]:
    if isinstance(value, list):  # [{name:, value:}] or [{group:}]
        return {v["name"]: str(v.get("value", "")) for v in value if "name" in v}
    return _strings(value or {})


# --- GitLab -----------------------------------------------------------------------------


class _GitLabLoader(yaml.SafeLoader):
    pass


_GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def _flatten(script) -> list[str]:
    if script is None:
        return []
    if isinstance(script, str):
        return [script]
    return [line for item in script for line in _flatten(item)]


def gitlab_jobs(project: Path, inputs: dict[str, str], head: str) -> list[CiJob]:
    # A file with `spec:inputs` is two documents: the header, then the configuration. GitLab
    # writes each input (the value given, else its default) into the text where the
    # configuration says $[[ inputs.x ]], when it creates the pipeline.
    text = (project / ".gitlab-ci.yml").read_text()
    documents = [d for d in yaml.load_all(text, Loader=_GitLabLoader) if d is not None]
    spec = ((documents[0].get("spec") or {}).get("inputs") or {}) if len(documents) == 2 else {}
    values = {
        name: str(inputs.get(name, s.get("default", "") if isinstance(s, dict) else "")) for name, s in spec.items()
    }
    body = text.split("\n---\n", 1)[1] if len(documents) == 2 else text
    body = re.sub(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", lambda m: values.get(m.group(1), ""), body)
    config = yaml.load(body, Loader=_GitLabLoader)
    predefined = {
        "CI_MERGE_REQUEST_IID": "7",
        "CI_PIPELINE_ID": "100",
        "CI_PIPELINE_SOURCE": "web",
        "CI_JOB_ID": "1",
        "CI_JOB_URL": "https://gitlab.example.com/project/-/jobs/1",
        "CI_PROJECT_DIR": str(project),
        "CI_PROJECT_PATH": "example/project",
        "CI_PROJECT_ID": "42",
        "CI_COMMIT_SHA": head,
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
        "GITLAB_USER_LOGIN": "reviewer",
    }
    top = {**_strings(config.get("variables")), **inputs}

    def resolved(job: dict) -> dict:
        parents = job.get("extends") or []
        merged: dict = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            base = resolved(config[parent])
            merged = {**merged, **base, "variables": {**merged.get("variables", {}), **(base.get("variables") or {})}}
        return {**merged, **job, "variables": {**merged.get("variables", {}), **(job.get("variables") or {})}}

    jobs = []
    for name, job in config.items():
        if name.startswith(".") or not isinstance(job, dict) or "script" not in job:
            continue
        job = resolved(job)
        env = {**predefined, **top, **_strings(job.get("variables"))}
        for _ in range(3):  # GitLab expands variables inside variables
            env = _expand(env)
        steps = []
        for part in ("script", "after_script"):
            lines = _flatten(job.get(part))
            script = "\n".join(lines)
            if runs_databricks(script):
                steps.append(Step(f"{name}:{part}", script, GITLAB_SHELL, env))
        if steps:
            jobs.append(CiJob(".gitlab-ci.yml", name, steps))
    return jobs


def _expand(env: dict[str, str]) -> dict[str, str]:
    return {k: re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), v) for k, v in env.items()}


PLATFORM_JOBS = {"github_actions": github_jobs, "azure_devops": azure_jobs, "gitlab": gitlab_jobs}
