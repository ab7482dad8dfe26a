"""CI/CD of the generated project, for every platform and deployment pattern.

The CI files of each platform are parsed into one model (``CIJob``: when a job runs, which
``databricks bundle`` commands it runs against which targets, as whom, in which environment,
behind which gate) so that one table of expectations per pattern checks all three platforms.
Besides the flows, the tests check the files against the platform's JSON schema, GitHub
workflows with zizmor, that no stored credential appears, that every action and the
Databricks CLI are pinned (the CLI built from source against the project's committed go.sum),
and that docs/ci-setup.md lists exactly the federation subjects the CI files need.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

PLATFORMS = ("github_actions", "azure_devops", "gitlab")
PATTERNS = ("deploy_code", "deploy_models", "hybrid")
TARGETS = ("dev", "test", "staging", "prod")
CI_PATHS = {
    "github_actions": (".github",),
    "azure_devops": (".azure",),
    "gitlab": (".gitlab-ci.yml", ".gitlab"),
}
# Azure DevOps: the CI principal signs in with the pipeline's token (azure-devops-oidc); staging
# and prod with their service connection's ID token (env-oidc, through AzureCLI@2).
AUTH_TYPES = {
    "github_actions": {"github-oidc"},
    "azure_devops": {"azure-devops-oidc", "env-oidc"},
    "gitlab": {"env-oidc"},
}
SCHEMAS = {
    "github_actions": "vendor.github-workflows",
    "azure_devops": "vendor.azure-pipelines",
    "gitlab": "vendor.gitlab-ci",
}

# ../shared/ci/pinned-actions.md: the only actions (and commits) generated workflows may use.
PINNED_ACTIONS = {
    ("actions/checkout", "v7.0.1"): "3d3c42e5aac5ba805825da76410c181273ba90b1",
    ("actions/checkout", "v6.1.0"): "d23441a48e516b6c34aea4fa41551a30e30af803",
    ("actions/setup-python", "v7.0.0"): "5fda3b95a4ea91299a34e894583c3862153e4b97",
    ("actions/setup-python", "v6.3.0"): "ece7cb06caefa5fff74198d8649806c4678c61a1",
    ("astral-sh/setup-uv", "v10.0.1"): "20cfd1bf945f4377ade1205e4dbc17946fc9a30d",
    ("databricks/setup-cli", "v1.13.0"): "6bb7075f85b326f8b9ce160933dfe9bcd63c8121",
    # git rev-parse <tag>^{commit} in clones of the actions' repositories
    ("actions/upload-artifact", "v7.0.0"): "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
    ("actions/download-artifact", "v8.0.1"): "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",
}
CLI_VERSION = "1.12.1"
UV_VERSION = "0.13.8"

# The go.sum line of the CLI module, as the Go checksum database publishes it. The same line is in
# templates/databricks_cli.j2 (cli_sum), the generated .databricks-cli/go.sum and, once the lead's
# clitest/ module lands, clitest/go.sum: test_the_cli_pin_is_the_one_the_template_vouches_for.
CLI_GO_SUM = (
    f"github.com/databricks/cli v{CLI_VERSION} h1:AEmFRA5foGObnxzgbk/1392DS+9dNsQWUY3sdZ1Reeo=",
    f"github.com/databricks/cli v{CLI_VERSION}/go.mod h1:wAhcaWNPArzCrwFIm+gMDqDYKMRTSOqk95PpBckjI7Q=",
)

# Credentials that must never appear in generated CI: stored secrets, tokens, passwords.
FORBIDDEN = [
    r"secrets\.",
    r"\bsecrets\s*:",
    r"DATABRICKS_TOKEN\b",
    r"CLIENT_SECRET",
    r"(?i)passw(or)?d",
    r"(?i)personal[ _-]access[ _-]token",
    r"\bdapi[0-9a-f]{8,}",
    r"(?i)auth_type\s*:\s*(pat|oauth-m2m|azure-client-secret|basic)\b",
    r"(?i)\bapi[_-]?key\b",
    r"(?i)private[_-]key",
]

DEV_HOST = "https://dev-workspace.cloud.databricks.com"


# --------------------------------------------------------------------------------------
# Where a project's CI files are: in the project (project_root ".") or, for a project in a
# folder of a repository that may hold several, at the repository root, named after it.


@dataclass(frozen=True)
class Layout:
    project: Path  # the project's folder (databricks.yml)
    repo: Path  # the repository root
    slug: str
    root: str  # project_root: "." or the project's folder in the repository

    @property
    def mono(self) -> bool:
        return self.root != "."

    @property
    def prefix(self) -> str:
        """What names shared by a repository (environments, groups, jobs) start with."""
        return f"{self.slug}-" if self.mono else ""

    def ci_files(self, platform: str) -> list[Path]:
        if not self.mono:
            paths = [self.project / rel for rel in CI_PATHS[platform]]
        elif platform == "github_actions":
            paths = sorted((self.repo / ".github" / "workflows").glob(f"{self.slug}-*.yml"))
        elif platform == "azure_devops":
            paths = [self.repo / ".azure" / "pipelines" / self.slug]
        else:
            paths = [self.repo / ".gitlab-ci.yml", self.repo / ".gitlab" / "ci" / f"{self.slug}.yml"]
        files = []
        for path in paths:
            if path.is_file():
                files.append(path)
            elif path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        return files


def layout(project: Path) -> Layout:
    """The layout of a baked project, from the answers it records."""
    replay = project / ".cookiecutter-replay.json"
    answers = json.loads(replay.read_text())["cookiecutter"] if replay.exists() else {}
    root = answers.get("project_root", ".")
    repo = project if root == "." else project.parents[len(root.split("/")) - 1]
    return Layout(project, repo, answers.get("project_slug", project.name), root)


# --------------------------------------------------------------------------------------
# The model every platform's files are read into


@dataclass
class CIJob:
    file: str
    name: str
    triggers: frozenset[str]  # "pull_request", "push:<branch>", "manual"
    commands: str  # the shell text the job runs
    env: dict[str, str]  # environment of the commands
    environment: str | None = None  # CI environment (deployment target of the platform)
    gated: bool = False  # a human must approve or start it
    concurrency: str | None = None  # group/lock shared by deploys of one target
    needs: frozenset[str] = frozenset()  # names of jobs that must succeed first
    signs_in: bool = False  # the job can obtain a federated token
    raw: dict = field(default_factory=dict, repr=False)
    always: str = ""  # shell text that runs after ``commands`` whatever their outcome
    connection: str | None = None  # Azure DevOps: the service connection the job signs in through
    scripts: list[str] = field(default_factory=list, repr=False)  # each step's shell text, as the step runs it

    def sequence(self, text: str | None = None) -> list[tuple[str, str | None, str, str]]:
        """``databricks bundle`` commands in order, as (verb, job key or None, target, flags)."""
        found = []
        text = self.commands if text is None else text
        for match in re.finditer(r"databricks bundle (validate|deploy|run|destroy)\b([^\n]*)", text):
            verb, rest = match.groups()
            target = re.search(r"-t\s+\"?([\w-]+)\"?", rest)
            assert target, f"{self.file}:{self.name}: `databricks bundle {verb}` without -t: {rest!r}"
            key = re.match(r"\s+(\w+)", rest) if verb == "run" else None
            found.append((verb, key.group(1) if key else None, target.group(1), rest))
        return found

    @property
    def ops(self) -> set[tuple[str, str | None, str]]:
        """``databricks bundle`` commands as (verb, job key or None, target)."""
        return {(verb, key, target) for verb, key, target, _ in self.sequence(self.commands + "\n" + self.always)}

    @property
    def uses_databricks(self) -> bool:
        return bool(re.search(r"\bdatabricks (bundle|model-versions)\b", self.commands + self.always))


def _substitute(text: str, env: dict[str, str]) -> str:
    """Replace $NAME / ${NAME} by literal values (not by values that are expressions)."""
    for name, value in env.items():
        if value and "$" not in str(value):
            text = re.sub(rf"\$\{{?{name}\b\}}?", str(value), text)
    return text


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _flatten(items) -> list[str]:
    if items is None:
        return []
    if isinstance(items, str):
        return [items]
    out = []
    for item in items:
        out.extend(_flatten(item))
    return out


def _branch_refs(text: str) -> set[str]:
    return set(re.findall(r"refs/heads/([\w./-]+?)'", text))


# GitHub Actions ------------------------------------------------------------------------


def github_action_file(uses: str, where: Layout) -> Path | None:
    """The action.yml of a local action (`$/path`, the repository at the running commit, or
    `./path` in the checkout), else None."""
    for prefix in ("$/", "./"):
        if uses.startswith(prefix):
            return where.repo / uses.removeprefix(prefix) / "action.yml"
    return None


def _github_steps(steps: list, where: Layout) -> list[dict]:
    """A job's steps with each local composite action's steps in its place (their `with`
    inputs written into `${{ inputs.x }}`)."""
    out = []
    for step in steps:
        path = github_action_file(str(step.get("uses", "")), where)
        if path is None:
            out.append(step)
            continue
        action = yaml.safe_load(path.read_text())
        inputs = {k: str(v) for k, v in (step.get("with") or {}).items()}
        for inner in action["runs"]["steps"]:
            text = yaml.safe_dump(inner)
            text = re.sub(
                r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m, inputs=inputs: inputs.get(m.group(1), ""), text
            )
            out.append(yaml.safe_load(text))
    return out


def github_jobs(project: Path) -> list[CIJob]:
    jobs = []
    where = layout(project)
    for path in where.ci_files("github_actions"):
        if path.name == "action.yml":  # a local action: read where a job uses it
            continue
        wf = yaml.safe_load(path.read_text())
        on = wf.get("on", wf.get(True))  # PyYAML reads the key `on` as True
        triggers: set[str] = set()
        if "pull_request" in on:
            triggers.add("pull_request")
        if "push" in on:
            triggers |= {f"push:{b}" for b in on["push"]["branches"]}
        if "workflow_dispatch" in on:
            triggers.add("manual")
        if "schedule" in on:
            triggers.add("schedule")
        for job_id, job in wf["jobs"].items():
            job_triggers = set(triggers)
            refs = re.findall(r"github\.ref == 'refs/heads/([^']+)'", job.get("if", ""))
            if refs:
                job_triggers = {t for t in job_triggers if not t.startswith("push:")} | {
                    f"push:{r}" for r in refs if f"push:{r}" in triggers
                }
            matrix = job.get("strategy", {}).get("matrix", {}).get("include") or [{}]
            for entry in matrix:

                def expand(value, entry=entry):
                    return re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(entry[m.group(1)]), str(value))

                env = {k: expand(v) for k, v in {**wf.get("env", {}), **job.get("env", {})}.items()}
                runs, always = [], []
                for step in _github_steps(job["steps"], where):
                    env.update({k: expand(v) for k, v in step.get("env", {}).items()})
                    if "run" in step:
                        (always if str(step.get("if", "")).strip() == "always()" else runs).append(step["run"])
                environment = job.get("environment")
                if isinstance(environment, dict):
                    environment = environment["name"]
                concurrency = job.get("concurrency")
                if isinstance(concurrency, dict):
                    concurrency = concurrency["group"]
                needs = job.get("needs", [])
                jobs.append(
                    CIJob(
                        file=path.name.removeprefix(where.prefix),
                        name=job_id + (f"[{entry.get('target')}]" if entry else ""),
                        triggers=frozenset(job_triggers),
                        commands=_substitute("\n".join(runs), env),
                        scripts=runs + always,
                        env=env,
                        environment=environment,
                        # Approval = the `prod` environment's required reviewers (docs/ci-setup.md).
                        gated=environment == f"{where.prefix}prod",
                        concurrency=expand(concurrency) if concurrency else None,
                        needs=frozenset([needs] if isinstance(needs, str) else needs),
                        signs_in=job.get("permissions", {}).get("id-token") == "write",
                        raw=job,
                        always=_substitute("\n".join(always), env),
                    )
                )
    return jobs


# Azure DevOps --------------------------------------------------------------------------


def _ado_steps(steps: list, base: Path) -> list[dict]:
    out = []
    for step in steps:
        if "template" in step:
            template = yaml.safe_load((base / step["template"]).read_text())
            out.extend(_ado_steps(template["steps"], (base / step["template"]).parent))
        else:
            out.append(step)
    return out


def _azure_triggers(project: Path, path: Path, seen: tuple = ()) -> set[str]:
    """A pipeline's triggers; a pipeline-completion trigger inherits the source pipeline's,
    limited to the branches it names (the source is `<slug>-<file stem>`)."""
    pipeline = yaml.safe_load(path.read_text())
    triggers: set[str] = set()
    if pipeline.get("pr", "none") != "none":
        triggers.add("pull_request")
    if pipeline.get("trigger", "none") != "none":
        triggers |= {f"push:{b}" for b in pipeline["trigger"]["branches"]["include"]}
    for schedule in pipeline.get("schedules", []):
        triggers |= {f"schedule:{b}" for b in schedule["branches"]["include"]}
    for resource in pipeline.get("resources", {}).get("pipelines", []):
        source = path.parent / f"{resource['source'].removeprefix(layout(project).slug + '-')}.yml"
        assert source.is_file() and source not in seen, resource
        branches = set(resource["trigger"]["branches"]["include"])
        for t in _azure_triggers(project, source, (*seen, path)):
            if t == "manual":
                triggers |= {f"manual:{b}" for b in branches}
            elif t.startswith("push:") and t[5:] in branches:
                triggers.add(t)
    if not triggers:
        triggers.add("manual")
    return triggers


def azure_jobs(project: Path) -> list[CIJob]:
    jobs = []
    slug = layout(project).slug
    for path in [p for p in layout(project).ci_files("azure_devops") if p.parent.name != "templates"]:
        pipeline = yaml.safe_load(path.read_text())
        triggers = _azure_triggers(project, path)
        stage_jobs: dict[str, list[str]] = {}
        previous: list[str] = []
        for stage in pipeline["stages"]:
            refs = _branch_refs(stage.get("condition", ""))
            # A stage condition on Build.SourceBranch limits every trigger to those branches.
            stage_triggers = (
                {t for t in triggers if ":" in t and t.split(":", 1)[1] in refs}
                | {f"manual:{r}" for r in refs if "manual" in triggers}
                if refs
                else triggers
            )
            depends = stage.get("dependsOn", previous)  # without dependsOn: the previous stage
            depends = [depends] if isinstance(depends, str) else depends
            previous = [stage["stage"]]
            needs = frozenset(name for d in depends for name in stage_jobs[d])
            stage_jobs[stage["stage"]] = []
            for job in stage["jobs"]:
                name = job.get("job") or job["deployment"]
                steps = job["strategy"]["runOnce"]["deploy"]["steps"] if "deployment" in job else job["steps"]
                steps = _ado_steps(steps, path.parent)
                matrix = job.get("strategy", {}).get("matrix") or {"": {}}
                for leg, leg_vars in matrix.items():
                    env = {**job.get("variables", {}), **leg_vars}
                    scripts, always, bodies, token_mapped, connections = [], [], [], True, set()
                    # The pipeline's ID token minted by a step (System.AccessToken mapped into it alone).
                    minted = any(
                        "SYSTEM_OIDCREQUESTURI" in (s.get("script") or "")
                        and s.get("env", {}).get("SYSTEM_ACCESSTOKEN") == "$(System.AccessToken)"
                        for s in steps
                    )
                    for step in steps:
                        body = step.get("script")
                        if str(step.get("task", "")).startswith("AzureCLI@"):
                            inputs = step["inputs"]
                            body = inputs["inlineScript"]
                            if inputs.get("addSpnToEnvironment") is True:  # exposes the ID token as idToken
                                connections.add(inputs["azureSubscription"])
                        if body is None:
                            continue
                        bodies.append(body)
                        step_env = {**env, **step.get("env", {})}
                        runs_always = str(step.get("condition", "")).strip() == "always()"
                        (always if runs_always else scripts).append(_substitute(body, step_env))
                        if re.search(r"\bdatabricks (bundle|model-versions|workspace)\b", body):
                            if "script" in step:
                                token_mapped &= step.get("env", {}).get(
                                    "SYSTEM_ACCESSTOKEN"
                                ) == "$(System.AccessToken)" or (
                                    minted
                                    and step.get("env", {}).get("DATABRICKS_OIDC_TOKEN") == "$(DATABRICKS_OIDC_TOKEN)"
                                )
                            else:
                                token_mapped = False
                        env.update(step.get("env", {}))
                    environment = job.get("environment")
                    if isinstance(environment, dict):
                        environment = environment["name"]
                    lock = stage.get("lockBehavior") == "sequential" and environment
                    auth = env.get("DATABRICKS_AUTH_TYPE")
                    pipeline_token = token_mapped and (
                        (auth == "azure-devops-oidc" and "SYSTEM_ACCESSTOKEN" in env)
                        or (auth == "env-oidc" and minted and "DATABRICKS_OIDC_TOKEN" in env)
                    )
                    via_connection = auth == "env-oidc" and env.get("DATABRICKS_OIDC_TOKEN_ENV") == "idToken"
                    (connection,) = connections if via_connection and len(connections) == 1 else (None,)
                    jobs.append(
                        CIJob(
                            file=path.name,
                            name=f"{stage['stage']}.{name}" + (f"[{leg}]" if leg else ""),
                            triggers=frozenset(stage_triggers),
                            commands="\n".join(scripts),
                            env=env,
                            environment=environment,
                            # Approval = checks on the `<slug>-prod` environment (docs/ci-setup.md).
                            gated=environment == f"{slug}-prod",
                            concurrency=environment if lock else None,
                            needs=needs,
                            signs_in=pipeline_token or connection is not None,
                            raw=job,
                            always="\n".join(always),
                            connection=connection,
                            scripts=bodies,
                        )
                    )
                stage_jobs[stage["stage"]].append(f"{stage['stage']}.{name}")
    return jobs


# GitLab ---------------------------------------------------------------------------------

GITLAB_KEYWORDS = {"workflow", "stages", "default", "variables", "include", "image", "services", "cache", "spec"}


def _gitlab_resolve(config: dict, name: str) -> dict:
    job = config[name]
    extends = job.get("extends", [])
    merged: dict = {}
    for parent in [extends] if isinstance(extends, str) else extends:
        merged = _deep_merge(merged, _gitlab_resolve(config, parent))
    return _deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})


def _gitlab_triggers(rule_if: str) -> set[str]:
    if "merge_request_event" in rule_if:
        return {"pull_request"}
    branch = re.search(r'\$CI_COMMIT_BRANCH == "([^"]+)"', rule_if)
    if '"schedule"' in rule_if and branch:
        return {f"schedule:{branch.group(1)}"}
    if '"web"' in rule_if:
        # The promotion input (older CI files: the PROMOTE_MODEL pipeline variable).
        assert '"$[[ inputs.promote_model ]]"' in rule_if or "$PROMOTE_MODEL" in rule_if, rule_if
        return {f"manual:{branch.group(1)}"} if branch else {"manual"}
    if '"push"' in rule_if and branch:
        return {f"push:{branch.group(1)}"}
    raise AssertionError(f"unexpected rule: {rule_if}")


def gitlab_documents(path: Path) -> tuple[dict, dict]:
    """(header, configuration) of a GitLab CI file: a file with `spec:inputs` is two YAML
    documents, the header and, after `---`, the configuration; a file without one is one."""
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    if len(documents) == 2:
        assert set(documents[0]) == {"spec"}, f"{path}: the first document holds only spec"
        return documents[0], documents[1]
    assert len(documents) == 1, f"{path}: {len(documents)} documents"
    return {}, documents[0]


def gitlab_inputs(path: Path) -> dict[str, dict]:
    """The `spec:inputs` of a GitLab CI file."""
    return (gitlab_documents(path)[0].get("spec") or {}).get("inputs") or {}


def gitlab_config(project: Path) -> tuple[Path, dict]:
    """The project's GitLab file and its configuration; a project in a folder has its jobs in
    .gitlab/ci/<slug>.yml, included by the repository's .gitlab-ci.yml (global keywords)."""
    files = layout(project).ci_files("gitlab")
    config: dict = {}
    for path in files:
        _, part = gitlab_documents(path)
        clash = (set(config) & set(part)) - {"include"}
        assert not clash, f"{path}: keys defined twice: {sorted(clash)}"
        config.update(part)
    return files[-1], config


def gitlab_jobs(project: Path) -> list[CIJob]:
    path, config = gitlab_config(project)
    prefix = layout(project).prefix
    global_vars = {k: (v["value"] if isinstance(v, dict) else v) for k, v in config.get("variables", {}).items()}
    # Variables with a description are filled in on "Run pipeline": inputs, not constants.
    inputs = {k for k, v in config.get("variables", {}).items() if isinstance(v, dict) and "description" in v}
    jobs = []
    for name in config:
        if name.startswith(".") or name in GITLAB_KEYWORDS:
            continue
        job = _gitlab_resolve(config, name)
        rules = job.get("rules", [])
        assert rules, f"{name}: every job must say when it runs"
        triggers = set().union(*(_gitlab_triggers(r["if"]) for r in rules))
        env = {**global_vars, **job.get("variables", {})}
        script = "\n".join(_flatten(job.get("before_script")) + _flatten(job.get("script")))
        after = "\n".join(_flatten(job.get("after_script")))
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment["name"]
        jobs.append(
            CIJob(
                file=path.name,
                name=name,
                triggers=frozenset(triggers),
                commands=_substitute(script, {k: v for k, v in env.items() if k not in inputs}),
                env=env,
                environment=environment,
                # Approval = manual job in the protected `prod` environment (docs/ci-setup.md).
                gated=environment == f"{prefix}prod" and all(r.get("when") == "manual" for r in rules),
                concurrency=job.get("resource_group"),
                needs=frozenset(job.get("needs", [])),
                signs_in="DATABRICKS_OIDC_TOKEN" in job.get("id_tokens", {}),
                raw=job,
                always=_substitute(after, {k: v for k, v in env.items() if k not in inputs}),
                scripts=[script, after] if after else [script],
            )
        )
    return jobs


EXTRACT = {"github_actions": github_jobs, "azure_devops": azure_jobs, "gitlab": gitlab_jobs}


# --------------------------------------------------------------------------------------
# Helpers


def ci_files(project: Path, platform: str) -> list[Path]:
    return layout(project).ci_files(platform)


def bundle_targets(project: Path) -> dict:
    return yaml.safe_load((project / "databricks.yml").read_text())["targets"]


# The input of the deploy_models promotion that names the dev model to promote, per platform.
SOURCE_MODEL_INPUT = {"github_actions": "source_model", "azure_devops": "sourceModel", "gitlab": "source_model"}
UC_NAME = r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$"


def promotion_inputs(project: Path, platform: str) -> dict[str, dict[str, str]]:
    """What a person fills in to start the promotion: name -> default, description, and the
    reference a job's environment uses to read it (GitLab: the variable itself)."""
    if platform == "github_actions":
        path = project / ".github" / "workflows" / "promote.yml"
        if not path.exists():
            return {}
        wf = yaml.safe_load(path.read_text())
        inputs = wf.get("on", wf.get(True))["workflow_dispatch"].get("inputs", {})
        return {
            k: {"default": str(v.get("default", "")), "description": v["description"], "ref": f"inputs.{k}"}
            for k, v in inputs.items()
        }
    if platform == "azure_devops":
        parameters = []
        for name in ("promote-staging.yml", "promote.yml"):
            path = project / ".azure" / "pipelines" / name
            if path.exists():
                parameters += yaml.safe_load(path.read_text()).get("parameters", [])
        return {
            p["name"]: {
                "default": str(p.get("default", "")),
                "description": p["displayName"],
                "ref": f"parameters.{p['name']}",
            }
            for p in parameters
        }
    inputs = gitlab_inputs(layout(project).ci_files("gitlab")[-1])
    return {
        k: {"default": str(v.get("default", "")), "description": v["description"], "ref": f"inputs.{k}"}
        for k, v in inputs.items()
    }


def reads_input(platform: str, job: CIJob, var: str, spec: dict[str, str]) -> bool:
    """True if the job's environment variable ``var`` carries the input ``spec``."""
    if platform == "gitlab":  # the script sets it from the input, written in when the pipeline is created
        return f'{var}="$[[ {spec["ref"]} ]]"' in job.commands
    return bool(re.fullmatch(rf"\$\{{\{{\s*{re.escape(spec['ref'])}\s*\}}\}}", str(job.env.get(var, ""))))


def target_identity(project: Path, target: str) -> tuple[str, str | None]:
    """(host, service principal) of a bundle target: the principal that deploys it and that its
    jobs run as is the target's ``service_principal`` variable (no target-level ``run_as``)."""
    spec = bundle_targets(project)[target]
    staging = bundle_targets(project)["staging"]["workspace"]["host"]
    host = spec.get("workspace", {}).get("host") or staging
    return host, spec.get("variables", {}).get("service_principal")


def check_schema(project: Path, platform: str) -> None:
    """check-jsonschema with the platform's built-in schema, on every CI YAML file."""
    files = [str(p) for p in ci_files(project, platform) if p.suffix in (".yml", ".yaml")]
    assert files
    where = layout(project)
    if platform == "github_actions" and where.mono:  # the project's local actions, at the repository root
        files += [str(p) for p in sorted((where.repo / ".github" / "actions").glob(f"{where.slug}-*/action.yml"))]
    if platform == "gitlab":  # a header and a configuration: check-jsonschema reads one document per file
        split = []
        for index, name in enumerate(files):
            for part, document in enumerate(gitlab_documents(Path(name))):
                if document:
                    out = Path(tempfile.mkdtemp()) / f"{Path(name).stem}-{index}-{part}.yml"
                    out.write_text(yaml.safe_dump(document))
                    split.append(str(out))
        files = split
    # The vendored Azure Pipelines schema has a branch-filter pattern (`\:`) that is invalid
    # in Unicode mode, which crashes the default regex engine on any branch filter.
    variant = ["--regex-variant", "nonunicode"] if platform == "azure_devops" else []
    command = [sys.executable, "-m", "check_jsonschema", *variant, "--builtin-schema"]
    actions = [f for f in files if Path(f).name == "action.yml"]  # GitHub's local actions
    for schema, group in (
        (SCHEMAS[platform], [f for f in files if f not in actions]),
        ("vendor.github-actions", actions),
    ):
        if group:
            result = subprocess.run([*command, schema, *group], capture_output=True, text=True)
            assert result.returncode == 0, result.stdout + result.stderr


def executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (it is in the template's dev dependencies)")
    return found


@pytest.fixture(params=PLATFORMS)
def platform(request):
    return request.param


@pytest.fixture(params=PATTERNS)
def pattern(request):
    return request.param


@pytest.fixture
def project(baked, platform, pattern) -> Path:
    return baked(cicd_platform=platform, deployment_pattern=pattern)


@pytest.fixture
def jobs(project, platform) -> list[CIJob]:
    return EXTRACT[platform](project)


# --------------------------------------------------------------------------------------
# Files, schema, security


def test_no_ci_files_without_a_platform(baked, pattern):
    project = baked(cicd_platform="none", deployment_pattern=pattern)
    for rel in (".github", ".azure", ".gitlab-ci.yml", ".gitlab", "docs/ci-setup.md"):
        assert not (project / rel).exists(), rel


def test_only_the_chosen_platform_has_files(project, platform, pattern):
    for other, paths in CI_PATHS.items():
        for rel in paths:
            if other != platform:
                assert not (project / rel).exists(), rel
    assert ci_files(project, platform)
    assert (project / "docs" / "ci-setup.md").is_file()
    promotion_files = [p.name for p in ci_files(project, platform) if p.stem == "promote"]
    assert bool(promotion_files) == (pattern != "deploy_code" and platform != "gitlab")


def test_ci_files_match_the_platform_schema(project, platform):
    check_schema(project, platform)


@pytest.mark.parametrize("persona", ["regular", "pedantic"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_github_workflows_have_no_zizmor_findings(baked, pattern, persona):
    project = baked(cicd_platform="github_actions", deployment_pattern=pattern)
    command = [executable("zizmor"), "--offline", "--no-ignores", "--persona", persona, "--format", "json"]
    result = subprocess.run(
        [*command, str(project / ".github")],
        capture_output=True,
        text=True,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert result.returncode == 0, result.stderr


def test_no_stored_credentials(project, platform):
    for path in ci_files(project, platform) + [project / "docs" / "ci-setup.md"]:
        text = path.read_text()
        if path.name == "ci-setup.md":  # prose may name what is *not* used; commands may not
            text = "\n".join(re.findall(r"```.*?```", text, flags=re.S))
        for pattern in FORBIDDEN:
            match = re.search(pattern, text)
            assert not match, f"{path.relative_to(project)}: {match.group(0)!r} ({pattern})"
    if platform == "azure_devops":  # the only macro is the job's own, short-lived access token
        for path in ci_files(project, platform):
            # DATABRICKS_OIDC_TOKEN: the (secret) ID token the pull request pipeline mints from it.
            allowed = {"System.AccessToken", "Pipeline.Workspace", "Agent.OS", "UV_CACHE_DIR", "DATABRICKS_OIDC_TOKEN"}
            assert set(re.findall(r"\$\((\w[\w.]*)\)", path.read_text())) <= allowed, path


def test_every_job_that_calls_databricks_signs_in_by_workload_identity(project, platform, jobs):
    for job in jobs:
        if job.uses_databricks:
            assert job.signs_in, f"{job.file}:{job.name} calls Databricks without a federated token"
            assert job.env.get("DATABRICKS_AUTH_TYPE") in AUTH_TYPES[platform], job.name
            assert re.fullmatch(r"https://[\w.-]+", job.env["DATABRICKS_HOST"]), job.name
            assert re.fullmatch(r"[0-9a-f-]{36}", job.env["DATABRICKS_CLIENT_ID"]), job.name
        else:
            assert not job.signs_in, f"{job.file}:{job.name} gets a token it does not need"
            assert "DATABRICKS_CLIENT_ID" not in job.env, job.name


# What the CLI build of templates/databricks_cli.j2 (macro install) always contains.
# The build reads no go.work, go.env or toolchain line from outside the module, talks only to the
# public proxy and checksum database, and refuses a replaced CLI module.
CLI_BUILD = (
    'go -C "$module" build -trimpath',
    "export GOWORK=off GOENV=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0",
    "export GOPROXY=https://proxy.golang.org GOSUMDB=sum.golang.org",
    'go -C "$module" list -m -json github.com/databricks/cli > "$listing"',
    'if grep -q \'"Replace"\' "$listing"; then',
)
UNSAFE_GO = re.compile(
    r"GONOSUMDB=|GONOSUMCHECK=|GOSUMDB=(?!sum\.golang\.org\b)|GOINSECURE=|GOFLAGS=-mod=mod"
    r"|GOPROXY=(?!https://proxy\.golang\.org\b)|GOWORK=(?!off\b)|-insecure"
)


def cli_pin_problems(project: Path, platform: str, jobs: list[CIJob]) -> list[str]:
    """Every job that calls Databricks runs the CLI built from source against the project's
    committed .databricks-cli/go.sum (GitLab: built in this pipeline by a job without a token, and
    taken from its artifacts); the go.sum pins the CLI by the checksum database's hash."""
    problems = []
    go_sum = project / ".databricks-cli" / "go.sum"
    if not go_sum.is_file() or not set(CLI_GO_SUM) <= set(go_sum.read_text().splitlines()):
        problems.append(f".databricks-cli/go.sum does not pin github.com/databricks/cli v{CLI_VERSION}")
    builders = {job.name: job for job in jobs if all(piece in job.commands for piece in CLI_BUILD)}
    for job in jobs:
        if UNSAFE_GO.search(job.commands):
            problems.append(f"{job.file}:{job.name}: weakens Go's module verification")
        if not job.uses_databricks:
            continue
        if platform == "gitlab":
            built = [builders[name] for name in job.needs if name in builders]
            source = built[0].commands if built and ".databricks-cli/bin:$PATH" in job.commands else ""
        elif platform == "github_actions":  # built by a job of the same run, checked by its SHA-256
            built = [builders[name] for name in job.needs if name in builders]
            checked = (
                "sha256sum -c <<<" in job.commands and '"$RUNNER_TEMP/databricks-cli" >> "$GITHUB_PATH"' in job.commands
            )
            source = built[0].commands if built and checked else ""
            if built and built[0].signs_in:
                problems.append(f"{job.file}:{job.name}: its CLI is built by a job that holds a token")
        elif job.name in builders:  # Azure DevOps: the job builds the CLI it runs
            source = job.commands
        else:  # or a stage before it built it, without a token, and the job checks its SHA-256
            built = [builders[name] for name in job.needs if name in builders]
            checked = (
                "sha256sum -c <<<" in job.commands
                and "##vso[task.prependpath]$PIPELINE_WORKSPACE/databricks-cli" in job.commands
            )
            source = built[0].commands if built and checked else ""
            if built and built[0].signs_in:
                problems.append(f"{job.file}:{job.name}: its CLI is built by a job that holds a token")
        if f'grep -qxF "{CLI_GO_SUM[0]}"' not in source:
            problems.append(f"{job.file}:{job.name}: runs a Databricks CLI not built from .databricks-cli/go.sum")
    return problems


def test_databricks_cli_is_built_from_the_committed_go_sum(project, platform, jobs):
    text = "\n".join(p.read_text() for p in ci_files(project, platform))
    assert "setup-cli" not in text and "install.sh" not in text and not re.search(r"\|\s*(sudo\s+)?sh\b", text)
    assert not re.search(r"pip install[^\n]*databricks", text)
    assert cli_pin_problems(project, platform, jobs) == []
    module = (project / ".databricks-cli" / "go.mod").read_text()
    assert f"require github.com/databricks/cli v{CLI_VERSION}\n" in module
    assert "replace" not in module
    assert (project / ".databricks-cli" / "tools.go").read_text().count('import _ "github.com/databricks/cli"') == 1


def test_the_cli_pin_is_the_one_the_template_vouches_for(baked):
    """One hash, three places: the template's macro, the generated go.sum and (once it exists)
    the template's own clitest/go.sum that the real-CLI tests build from."""
    from bake import TEMPLATE_DIR

    macro = (TEMPLATE_DIR / "templates" / "databricks_cli.j2").read_text()
    assert f'cli_version = "{CLI_VERSION}"' in macro and f'cli_sum = "{CLI_GO_SUM[0]}"' in macro
    project = baked(cicd_platform="github_actions", deployment_pattern="deploy_code")

    def cli_lines(go_sum: Path) -> list[str]:
        return [line for line in go_sum.read_text().splitlines() if line.startswith("github.com/databricks/cli ")]

    assert cli_lines(project / ".databricks-cli" / "go.sum") == list(CLI_GO_SUM)
    clitest = TEMPLATE_DIR / "clitest" / "go.sum"
    if clitest.is_file():
        assert cli_lines(clitest) == list(CLI_GO_SUM)


def test_python_uv_and_java_for_the_checks(project, platform, jobs):
    checks = [j for j in jobs if re.search(r"\bmake (test|scenario)\b", j.commands)]
    assert checks
    for job in checks:
        java = job.commands + json.dumps(job.env)
        assert re.search(r"JAVA_HOME_17_X64|openjdk-17", java), f"{job.name}: no Java 17 for Spark"
        assert "pip install --require-hashes --no-deps -r ci-requirements.txt" in job.commands
        assert "make install" in job.commands  # uv sync --locked (the project's Makefile)
    pins = (project / "ci-requirements.txt").read_text()
    assert f"uv=={UV_VERSION} \\\n    --hash=sha256:" in pins
    text = "\n".join(p.read_text() for p in ci_files(project, platform))
    if platform == "github_actions":
        for job in checks:
            steps = job.raw["steps"]
            assert {"python-version": "3.12"} in [s.get("with") for s in steps if "setup-python" in s.get("uses", "")]
            assert not [s for s in steps if "setup-uv" in s.get("uses", "")]  # uv from ci-requirements.txt
    elif platform == "azure_devops":
        assert 'versionSpec: "3.12"' in text
    else:
        assert gitlab_config(project)[1]["default"]["image"].startswith("python:3.12-bookworm@sha256:")


# --------------------------------------------------------------------------------------
# Flows per pattern


def expected_flows(project: Path, pattern: str, platform: str = "github_actions") -> dict[str, set]:
    default, release = "main", "release"  # the template's defaults
    pr = {("validate", None, "test"), ("deploy", None, "test"), ("destroy", None, "test")}
    staging = {("validate", None, "staging"), ("deploy", None, "staging")}
    prod = {("validate", None, "prod"), ("deploy", None, "prod")}
    flows = {"pull_request": pr, f"push:{default}": staging, "manual": set()}
    if pattern in ("deploy_code", "hybrid"):
        pr.add(("run", "model_training_job", "test"))
        staging.add(("run", "model_training_job", "staging"))
    if pattern == "deploy_code":
        prod.add(("run", "model_training_job", "prod"))
    if pattern == "deploy_models" and platform != "gitlab":
        flows[f"push:{default}"] = staging | prod
    else:  # GitLab: prod has a protected branch of its own in every pattern
        flows[f"push:{release}"] = prod
    if pattern == "deploy_models":
        flows["manual"] = {("run", "model_promotion_job", "staging"), ("run", "model_promotion_job", "prod")}
    if pattern == "hybrid":
        flows["manual"] = {("run", "model_promotion_job", "prod")}
    # The nightly sweeper: leftover pull request copies of the test target (also by hand on GitHub).
    flows["schedule"] = {("destroy", None, "test")}
    if platform == "github_actions":
        flows["manual"] = flows["manual"] | {("destroy", None, "test")}
    return flows


def test_each_trigger_runs_what_the_pattern_says(project, platform, pattern, jobs):
    actual: dict[str, set] = {}
    for job in jobs:
        for trigger in job.triggers:
            kind = trigger.split(":")[0] if trigger.startswith(("manual", "schedule")) else trigger
            actual.setdefault(kind, set()).update(job.ops)
    expected = expected_flows(project, pattern, platform)
    assert {k: v for k, v in actual.items() if v} == {k: v for k, v in expected.items() if v}


def test_pull_requests_run_the_checks(project, jobs):
    text = "\n".join(j.commands for j in jobs if "pull_request" in j.triggers)
    # The commands are the project's Makefile targets (test_command_surface.py checks what they run).
    for command in ("make install", "make lint", "make validate", "make test", "make scenario"):
        assert command in text, command
    for job in jobs:
        if job.triggers - {"pull_request"}:
            assert "make lint" not in job.commands, f"{job.name}: checks belong to pull requests"


def test_prod_is_reached_only_through_an_approval(project, jobs):
    prod_host, prod_sp = target_identity(project, "prod")
    for job in jobs:
        touches_prod = any(target == "prod" and verb != "validate" for verb, _, target in job.ops)
        as_prod = job.env.get("DATABRICKS_CLIENT_ID") == prod_sp
        if touches_prod or as_prod:
            assert job.gated, f"{job.file}:{job.name} reaches prod without an approval"
            assert "pull_request" not in job.triggers, job.name
            assert as_prod and job.env["DATABRICKS_HOST"] == prod_host, job.name
        if "pull_request" in job.triggers:
            assert not as_prod, f"{job.name}: pull requests must never sign in as the prod principal"


def test_each_target_is_reached_as_its_own_identity(project, jobs):
    ci_sp = "00000000-0000-0000-0000-000000000003"  # the template's default ci_service_principal
    for job in jobs:
        for verb, _, target in job.ops:
            host, run_as = target_identity(project, target)
            assert job.env["DATABRICKS_HOST"] == host, f"{job.name}: {verb} -t {target}"
            expected = ci_sp if target == "test" else run_as
            assert job.env["DATABRICKS_CLIENT_ID"] == expected, f"{job.name}: {verb} -t {target}"
        assert len({t for _, _, t in job.ops}) <= 1, f"{job.name} reaches several targets"


def test_deploys_of_one_target_never_overlap(project, platform, jobs):
    for job in jobs:
        targets = {t for verb, _, t in job.ops if verb != "validate"} - {"test"}
        if not targets:
            continue
        (target,) = targets
        assert job.environment and target in job.environment, (job.name, job.environment)
        promotion = any(key == "model_promotion_job" for _, key, _ in job.ops)
        if platform == "azure_devops":  # the environment's exclusive lock; sequential never drops a run
            assert job.concurrency == job.environment and job.raw and True
        elif platform == "github_actions":
            if promotion:  # no group: nothing can drop a queued promotion
                assert "concurrency" not in job.raw, job.name
            else:
                assert job.raw["concurrency"] == {"group": f"cd-deploy-{target}", "cancel-in-progress": False}
        else:
            assert job.concurrency == f"{'promote' if promotion else 'deploy'}-{target}", job.name
            assert job.raw.get("interruptible") is False


def test_promotions_copy_from_the_previous_catalog(project, platform, pattern, jobs):
    catalogs = {t: bundle_targets(project)[t]["variables"]["catalog"] for t in TARGETS}
    source = {"staging": catalogs["dev"], "prod": catalogs["staging"]}
    inputs = promotion_inputs(project, platform)
    promotions = [(job, t) for job in jobs for verb, key, t in job.ops if key == "model_promotion_job"]
    assert bool(promotions) == (pattern != "deploy_code")
    schema_model = None
    for job, target in promotions:
        params = re.search(r'--params "source_model=([\w.]+|\$\{\w+\}),source_version=(\S*)"', job.commands)
        assert params, f"{job.name}: promotion without source_model/source_version"
        source_model = params.group(1)
        variable = re.fullmatch(r"\$\{(\w+)\}", source_model)
        if variable:  # only the deploy_models staging promotion lets the person choose the model
            assert (pattern, target) == ("deploy_models", "staging"), f"{job.name}: source_model is not fixed"
            (spec,) = [s for s in inputs.values() if reads_input(platform, job, variable.group(1), s)]
            source_model = spec["default"]
        catalog, schema, model = source_model.split(".")
        assert catalog == source[target], f"{job.name}: {target} promotes from {catalog}"
        schema_model = schema_model or (schema, model)
        assert (schema, model) == schema_model
        assert {t.split(":")[0] for t in job.triggers} == {"manual"}, job.triggers
        # The version is an input: it must be a number (or empty) before it reaches --params.
        version_var = re.search(r"source_version=\$\{(\w+)\}", job.commands)
        assert version_var, f"{job.name}: source_version must come from a variable"
        assert f'case "${version_var.group(1)}" in *[!0-9]*)' in job.commands, job.name
        # The prod promotion carries the CI approval; staging's does not.
        assert ("approved_by=" in job.commands and "approval_run=" in job.commands) == (target == "prod"), job.name
    if pattern == "deploy_models":  # prod promotes exactly the version staging just promoted
        (staging,) = [j for j, t in promotions if t == "staging"]
        (prod,) = [j for j, t in promotions if t == "prod"]
        if platform == "azure_devops":  # a pipeline-completion trigger and the published version
            assert "promoteStaging/promotion/staging_version" in prod.commands
        elif platform == "github_actions":
            assert staging.name in prod.needs
        else:  # GitLab: prod runs from its own branch, in a pipeline of its own: the person names the version
            assert prod.triggers == {"manual:release"} and staging.triggers == {"manual:main"}
            assert 'version="${MODEL_VERSION:-$champion}"' in prod.commands
        # The dev version is resolved once, by the provenance check the staging promotion needs.
        checks = [j for j in jobs if j.name in staging.needs and "experiments get-run" in j.commands]
        assert platform == "azure_devops" or checks, staging.needs
        assert any('get-by-alias "$SOURCE_MODEL"' in j.commands for j in [staging, *checks])
    else:  # hybrid: prod copies staging's model, which production mode does not prefix
        assert SOURCE_MODEL_INPUT[platform] not in inputs


def test_deploy_models_promotes_the_dev_model_it_is_given(baked, platform):
    """Development mode registers dev_<user>_<model>: the person names the dev model to promote."""
    project = baked(cicd_platform=platform, deployment_pattern="deploy_models")
    targets = bundle_targets(project)
    dev, staging_catalog = targets["dev"]["variables"]["catalog"], targets["staging"]["variables"]["catalog"]
    variables = yaml.safe_load((project / "databricks.yml").read_text())["variables"]
    schema, model = variables["schema"]["default"], variables["model_name"]["default"]

    spec = promotion_inputs(project, platform).get(SOURCE_MODEL_INPUT[platform])
    assert spec, f"no input {SOURCE_MODEL_INPUT[platform]}"
    assert spec["default"] == f"{dev}.{schema}.{model}"
    assert f"{dev}.{schema}.dev_<user>_{model}" in spec["description"]

    jobs = EXTRACT[platform](project)
    (staging,) = [j for j in jobs if ("run", "model_promotion_job", "staging") in j.ops]
    (prod,) = [j for j in jobs if ("run", "model_promotion_job", "prod") in j.ops]

    # Passed through the environment, never written into the script.
    used = re.search(r'--params "source_model=\$\{(\w+)\},', staging.commands)
    assert used, "the staging promotion must take source_model from a variable"
    var = used.group(1)
    assert reads_input(platform, staging, var, spec), (var, staging.env.get(var))
    assert "${{" not in staging.commands
    assert platform == "gitlab" or spec["ref"] not in staging.commands

    # Validated before use: a Unity Catalog name of three identifiers, in the dev catalog.
    before = staging.commands[: staging.commands.index("databricks bundle run model_promotion_job")]
    checks = [line for line in before.splitlines() if var in line and "$[[" not in line]
    assert any(UC_NAME in line for line in checks), checks

    def accepted(value: str) -> bool:
        env = {"PATH": "/usr/bin:/bin", var: value}
        return subprocess.run(["bash", "-c", "\n".join(checks)], env=env, capture_output=True).returncode == 0

    assert accepted(spec["default"])
    assert accepted(f"{dev}.{schema}.dev_first_last_{model}")
    for bad in (
        f"{staging_catalog}.{schema}.{model}",
        f"{dev}x.{schema}.{model}",
        f"{dev}.{schema}",
        f"{dev}.{schema}.{model}.v2",
        "",
        f"{dev}.{schema}.{model},source_version=1",
        f"{dev}.{schema}.{model}\nid",
        f"{dev}.{schema}.$(id)",
        f"{dev}.{schema}.{model} ",
    ):
        assert not accepted(bad), f"{var}={bad!r} must be refused"

    # Prod still copies staging's champion from the staging catalog, not the input.
    prod_source = re.search(r'--params "source_model=([\w.]+),', prod.commands)
    assert prod_source and prod_source.group(1) == f"{staging_catalog}.{schema}.{model}"
    assert not re.search(rf"\$\{{?{var}\b", prod.commands)


def test_deploy_models_deploys_prod_after_staging(baked, platform):
    project = baked(cicd_platform=platform, deployment_pattern="deploy_models")
    jobs = EXTRACT[platform](project)
    (staging,) = [j for j in jobs if ("deploy", None, "staging") in j.ops]
    (prod,) = [j for j in jobs if ("deploy", None, "prod") in j.ops]
    if platform == "azure_devops":  # another pipeline (its own identity), started when staging's succeeds
        resources = yaml.safe_load((project / ".azure/pipelines/cd-prod.yml").read_text())["resources"]
        assert resources["pipelines"][0]["source"] == f"{project.name}-cd"
    elif platform == "github_actions":
        assert staging.name in prod.needs
    else:  # GitLab: prod deploys from the protected release branch (its own federation subject)
        assert staging.triggers == {"push:main"} and prod.triggers == {"push:release"}


# --------------------------------------------------------------------------------------
# Platform specifics


@pytest.mark.parametrize("pattern", PATTERNS)
def test_github_permissions_are_per_job_and_minimal(baked, pattern):
    project = baked(cicd_platform="github_actions", deployment_pattern=pattern)
    for path in (project / ".github" / "workflows").glob("*.yml"):
        wf = yaml.safe_load(path.read_text())
        assert wf["permissions"] == {}, f"{path.name}: default permissions must be none"
        for job_id, job in wf["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{path.name}:{job_id} must declare its permissions"
            assert perms.get("contents") == "read"
            assert set(perms) <= {"contents", "id-token", "actions", "pull-requests"}, perms
            # read-only extras: who approved (promote-prod), is a pull request open (sweeper)
            assert {perms[k] for k in set(perms) - {"id-token"}} == {"read"}, perms
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
    for job in github_jobs(project):
        assert job.signs_in == job.uses_databricks, job.name


@pytest.mark.parametrize("pattern", PATTERNS)
def test_github_actions_are_pinned_to_the_listed_commits(baked, pattern):
    project = baked(cicd_platform="github_actions", deployment_pattern=pattern)
    workflows = list((project / ".github" / "workflows").glob("*.yml"))
    for path in workflows + list((project / ".github" / "actions").glob("*/action.yml")):
        for line in path.read_text().splitlines():
            if "uses:" not in line:
                continue
            if path in workflows and re.search(r"uses: \$/\.github/actions/[\w-]+$", line):
                continue  # a local action: this repository at the running commit, checked below
            match = re.search(r"uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v[\w.]+)$", line)
            assert match, f"{path.name}: not pinned by commit with its tag: {line.strip()}"
            action, sha, tag = match.groups()
            assert PINNED_ACTIONS.get((action, tag)) == sha, f"{path.name}: {line.strip()}"


# --------------------------------------------------------------------------------------
# docs/ci-setup.md names exactly the trust the CI files need


def _doc_rows(project: Path) -> list[list[str]]:
    rows = []
    for line in (project / "docs" / "ci-setup.md").read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _github_branches(job: CIJob, project: Path) -> set[str]:
    """Branches a GitHub job can sign in from: its push branches, or its environment's
    deployment branches (docs/ci-setup.md) for a job started by hand."""
    branches = {t.split(":", 1)[1] for t in job.triggers if t.startswith("push:")}
    if job.triggers & {"manual", "schedule"}:
        for row in _doc_rows(project):
            if row and row[0] == f"`{job.environment}`" and len(row) == 2:
                branches |= set(re.findall(r"Deployment branches: `([^`]+)` only", row[1]))
    return branches


def _required_subjects(project: Path, platform: str, jobs: list[CIJob]) -> set[tuple[str, str, str]]:
    """(service principal, subject claim, subject) of the federation policies the jobs need."""
    required = set()
    ci_sp = "00000000-0000-0000-0000-000000000003"
    for job in jobs:
        if not job.signs_in:
            continue
        sp = job.env["DATABRICKS_CLIENT_ID"]
        if platform == "github_actions":
            assert job.environment, f"{job.name}: signs in without an environment"
            if sp == ci_sp:
                required.add((sp, "repository_id", "<repository-id>"))
                continue
            file = layout(project).prefix + job.file  # the workflow's name in the repository
            for branch in _github_branches(job, project):
                required.add(
                    (
                        sp,
                        "sub",
                        f"repository_id:<repository-id>:environment:{job.environment}:job_workflow_ref:"
                        f"<owner>/<repo>/.github/workflows/{file}@refs/heads/{branch}",
                    )
                )
        elif platform == "azure_devops":
            if job.connection:
                required.add((sp, "sub", f"sc://<organization>/<project>/{job.connection}"))
            else:
                required.add((sp, "sub", f"p://<organization>/<project>/{layout(project).slug}-{Path(job.file).stem}"))
        elif sp == ci_sp:
            required.add((sp, "project_id", "<project-id>"))
        else:
            for trigger in job.triggers:
                branch = trigger.split(":", 1)[1]
                required.add((sp, "sub", f"project_path:<group>/<project>:ref_type:branch:ref:{branch}"))
    return required


def federation_rows(project: Path) -> list[dict[str, str]]:
    """The rows of docs/ci-setup.md's federation policy table."""
    rows = []
    for row in _doc_rows(project):
        sp = re.search(r"\(`([0-9a-f-]{36})`\)", row[0])
        if sp and len(row) == 6:
            rows.append(
                {
                    "sp": sp.group(1),
                    "issuer": row[1].strip("`"),
                    "audiences": set(re.findall(r"`([^`]+)`", row[2])),
                    "claim": row[3].strip("`"),
                    "subject": row[4].strip("`"),
                }
            )
    return rows


def test_ci_setup_lists_exactly_the_federation_subjects(project, platform, jobs):
    rows = federation_rows(project)
    documented = {(r["sp"], r["claim"], r["subject"]) for r in rows}
    assert documented == _required_subjects(project, platform, jobs)
    issuers = {
        "github_actions": "https://token.actions.githubusercontent.com",
        "azure_devops": "https://vstoken.dev.azure.com/<organization-id>",
        "gitlab": "https://gitlab.com",
    }
    assert {r["issuer"] for r in rows} == {issuers[platform]}
    for job in jobs:  # the audience the CLI requests for a workspace is in its principal's policies
        if not job.signs_in:
            continue
        audiences = set().union(*(r["audiences"] for r in rows if r["sp"] == job.env["DATABRICKS_CLIENT_ID"]))
        expected = (
            "api://AzureADTokenExchange"
            if platform == "azure_devops"
            else f"{job.env['DATABRICKS_HOST']}/oidc/v1/token"
        )
        assert audiences == {expected}, (job.name, audiences)
        if platform == "gitlab":
            assert job.raw["id_tokens"]["DATABRICKS_OIDC_TOKEN"]["aud"] == expected


def test_ci_setup_documents_environments_approvals_and_grants(project, platform, pattern, jobs):
    doc = (project / "docs" / "ci-setup.md").read_text()
    for environment in {j.environment for j in jobs if j.environment}:
        assert f"`{environment}`" in doc, environment
    approval = {
        "github_actions": "Required reviewers",
        "azure_devops": "Approvals",
        "gitlab": "Required approvals",
    }
    # The prod approval: on the environment (GitHub, GitLab) or the service connection (Azure DevOps).
    prod_row = [r for r in _doc_rows(project) if r[0].strip("`").endswith("prod") and approval[platform] in r[1]]
    assert prod_row, "no approval documented for prod"
    _, prod_sp = target_identity(project, "prod")
    _, staging_sp = target_identity(project, "staging")
    assert f"GRANT USE CATALOG ON CATALOG `prod` TO `{prod_sp}`" in doc
    assert f"GRANT USE CATALOG ON CATALOG `staging` TO `{staging_sp}`" in doc
    # The bundle's grants on its models are authoritative (issue 8): the docs never tell an
    # admin to GRANT on a model, since the next deploy would revoke it.
    assert not re.search(r"GRANT [A-Z ,]+ ON FUNCTION", doc), "a hand-made grant on a bundle-managed model"
    assert ("APPLY_TAG" in doc) == (pattern != "deploy_code")
    # Safe order: environments and branch rules come before the federation policies.
    assert doc.index("## 2. Environments and approvals") < doc.index("## 3. Branch protection")
    assert doc.index("## 3. Branch protection") < doc.index("## 4. Federation policies")
    assert "**Pull requests from forks.**" in doc
    if platform == "gitlab":
        assert "Premium" in doc and "Minimum role to use pipeline variables: No one allowed" in doc


# --------------------------------------------------------------------------------------
# The template update check (cruft)

CRUFT = "cruft==2.16.0"  # the pin of the template's dev dependencies
NON_BLOCKING = {
    "github_actions": ("continue-on-error", True),
    "azure_devops": ("continueOnError", "true"),
    "gitlab": ("allow_failure", True),
}


def test_template_update_check_never_blocks_and_signs_in_as_nobody(project, platform, jobs, tmp_path):
    (job,) = [j for j in jobs if "cruft check" in j.commands]
    assert job.triggers == {"pull_request"}, job.triggers
    key, value = NON_BLOCKING[platform]
    assert job.raw.get(key) == value, f"{job.name}: {key} must be {value!r}"
    assert not job.signs_in and not job.uses_databricks
    assert not [k for k in job.env if k.startswith("DATABRICKS_")], job.env
    if platform == "github_actions":
        assert job.raw["permissions"] == {"contents": "read"}
    if platform == "gitlab":
        assert "id_tokens" not in job.raw
    assert f'uvx --from "{CRUFT}" cruft check' in job.commands
    # The check itself, run with a stand-in for uvx: skipped without .cruft.json, otherwise
    # the job fails (non-blocking) exactly when cruft check does, saying what to do.
    check = job.commands[job.commands.index("if [ ! -f .cruft.json ]") :]
    fake = tmp_path / "bin"
    fake.mkdir()

    def run(cruft_exit: int, linked: bool) -> subprocess.CompletedProcess:
        (fake / "uvx").write_text(f'#!/bin/sh\necho cruft "$@"\nexit {cruft_exit}\n')
        (fake / "uvx").chmod(0o755)
        work = tmp_path / f"w{cruft_exit}{linked}"
        work.mkdir()
        if linked:
            (work / ".cruft.json").write_text("{}")
        env = {"PATH": f"{fake}:/usr/bin:/bin"}
        return subprocess.run(["bash", "-c", check], cwd=work, env=env, capture_output=True, text=True)

    skipped = run(1, linked=False)
    assert skipped.returncode == 0 and "No .cruft.json" in skipped.stdout, skipped
    assert "cruft check" not in skipped.stdout
    current = run(0, linked=True)
    assert current.returncode == 0 and "cruft check" in current.stdout, current
    behind = run(1, linked=True)
    assert behind.returncode == 1 and "cruft update" in behind.stdout, behind


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("serving", [True, False])
def test_a_test_deployment_removes_its_serving_endpoint_before_destroy(baked, platform, serving):
    """The `serve` task creates the endpoint through the SDK, so `bundle destroy` would leave one
    endpoint behind per pull request: the always-run cleanup deletes it first (serving on only)."""
    project = baked(cicd_platform=platform, deployment_pattern="hybrid", include_serving_endpoint=serving)
    text = "\n".join(p.read_text() for p in ci_files(project, platform) if p.suffix in (".yml", ".yaml"))
    cleanup = 'databricks serving-endpoints delete "$endpoint"'
    if not serving:
        assert cleanup not in text
        return
    # One cleanup in the pull request's test deployment, one in the nightly sweeper.
    assert text.count(cleanup) == 2, "one cleanup per tear-down of a test copy"
    assert '["registered_models"]["model"]["name"] + "-test"' in text  # the name the serve task gives it
    for job in EXTRACT[platform](project):
        body = job.commands + "\n" + job.always
        if "databricks bundle destroy -t test" in body:
            assert body.index(cleanup) < body.index("databricks bundle destroy -t test"), job.name


def test_every_ci_script_parses_as_bash(project, platform, jobs):
    for job in jobs:
        for body in job.scripts:
            result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
            assert result.returncode == 0, f"{job.file}:{job.name}: {result.stderr}"


@pytest.mark.parametrize("pattern", ["deploy_models", "hybrid"])
def test_github_prod_promotion_records_the_reviewer_and_stops_without_one(baked, pattern, tmp_path):
    """approved_by holds who approved the prod environment (the run approvals API), not who
    started the run; a run that nobody approved stops before the promotion."""
    project = baked(cicd_platform="github_actions", deployment_pattern=pattern)
    workflow = yaml.safe_load((project / ".github" / "workflows" / "promote.yml").read_text())
    job = workflow["jobs"]["promote-prod"]
    assert job["permissions"]["actions"] == "read"
    (step,) = [s for s in job["steps"] if s.get("id") == "reviewer"]
    assert "/actions/runs/$GITHUB_RUN_ID/approvals" in step["run"]
    program = step["run"].split("python3 -c '", 1)[1].rsplit("'", 1)[0]
    promote = [s for s in job["steps"] if "model_promotion_job" in s.get("run", "")][0]
    assert promote["env"]["APPROVED_BY"] == "${{ steps.reviewer.outputs.login }}"
    assert "triggering_actor" not in json.dumps(workflow)

    def reviewer(approvals: list) -> subprocess.CompletedProcess:
        (tmp_path / "approvals.json").write_text(json.dumps(approvals))
        env = {"PATH": "/usr/bin:/bin", "PROD_ENVIRONMENT": "prod", "GITHUB_OUTPUT": str(tmp_path / "out")}
        return subprocess.run(["python3", "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True)

    approved = [
        {"state": "approved", "user": {"login": "re-viewer"}, "environments": [{"name": "prod"}]},
        {"state": "rejected", "user": {"login": "other"}, "environments": [{"name": "prod"}]},
        {"state": "approved", "user": {"login": "staging-only"}, "environments": [{"name": "staging"}]},
    ]
    assert reviewer(approved).returncode == 0
    assert (tmp_path / "out").read_text() == "login=re-viewer\n"
    nobody = reviewer([])
    assert nobody.returncode != 0 and "No reviewer approved the prod environment" in nobody.stderr
