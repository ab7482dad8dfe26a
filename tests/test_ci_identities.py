"""Who can obtain which Databricks identity, computed from the parsed CI files.

For every platform x pattern, ``identity_table`` lists each job with its triggers (event and
branch), CI environment, approval gate and the principal it signs in as (resolved from the
client ID in its environment). ``identity_violations`` checks the trust rules on that table:

- pull-request work only ever signs in as the CI principal, and only for the ``test`` target;
- the staging principal only from the default branch, the prod principal only from the
  pattern's prod branch, behind an approval;
- every deploy is preceded by its ``--strict`` validate in the same job; every test
  deployment is per pull request and is followed by an always-run destroy;
- every CLI that a job runs was built from source against the project's committed go.sum;
- Azure DevOps: one principal per pipeline; GitLab: the ID token audience is the one the CLI
  requests, the workspace token endpoint (databricks-sdk-go v0.170.0,
  config/experimental/auth/oidc/tokensource.go determineAudience).

``attacks`` models the attacker of issue 16 against the trust that docs/ci-setup.md sets up
(federation policies, environments, service connections, branch protection): someone who can
push a branch with an edited CI file, a fork, a writer/Maintainer without a review, and (GitHub,
Azure DevOps) another project's CI file in the same repository. None may obtain the staging or
prod principal. Beside it: Azure DevOps scripts fail closed (each body run as the script task
runs it, ``bash --noprofile --norc``, with every command in turn failing), a nightly sweeper
tears down leftover test copies, and jobs that hold a token build only with hash-pinned tools.

Every check also runs on the CI files of earlier commits, baked from them: 5bbfd49 (before the
identity work) and 5c502a0 (before issue 16). Each must fail there.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from bake import TEMPLATE_DIR
from cookiecutter.main import cookiecutter
from test_cicd import EXTRACT, PATTERNS, PLATFORMS, CIJob, _doc_rows, cli_pin_problems, federation_rows, layout

PRINCIPALS = {
    "00000000-0000-0000-0000-000000000003": "ci",
    "00000000-0000-0000-0000-000000000001": "staging",
    "00000000-0000-0000-0000-000000000002": "prod",
}
DEFAULT, RELEASE = "main", "release"
OLD_COMMIT = "5bbfd49"
BEFORE_ISSUE_16 = "5c502a0"


def prod_branch(pattern: str, platform: str = "github_actions") -> str:
    """GitLab gives prod a protected branch of its own in every pattern."""
    return DEFAULT if pattern == "deploy_models" and platform != "gitlab" else RELEASE


@dataclass
class Row:
    file: str
    job: str
    triggers: str
    branches: frozenset[str]  # branches the job can run from ("*" = any)
    environment: str
    gate: str
    principal: str
    ops: str


# GitHub: a workflow_dispatch job runs from any branch unless its environment restricts it;
# docs/ci-setup.md sets the deployment branches of `staging` and `prod`.
def _github_environment_branches(project: Path, pattern: str) -> dict[str, set[str]]:
    branches = {}
    for line in (project / "docs" / "ci-setup.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 2 and "Deployment branches" in cells[1]:
            branches[cells[0].strip("`")] = set(
                __import__("re").findall(r"Deployment branches: `([^`]+)` only", cells[1])
            )
    return branches


def _branches(job: CIJob, platform: str, env_branches: dict[str, set[str]]) -> frozenset[str]:
    found: set[str] = set()
    for trigger in job.triggers:
        if trigger == "pull_request":
            found.add("*")
        elif ":" in trigger:
            found.add(trigger.split(":", 1)[1])
        elif trigger == "manual":
            if platform == "github_actions" and job.environment in env_branches:
                found |= env_branches[job.environment]
            else:
                found.add("*")
    return frozenset(found)


def _gate(job: CIJob, platform: str, project: Path) -> str:
    """The approval a job waits for: prod's environment (or service connection), and any other
    environment or connection that docs/ci-setup.md gives approvers (the staging promotion)."""
    where = layout(project)
    prod = f"{where.prefix}prod"  # a project in a repository folder has environments of its own
    approvers = {name for name, rule in _protection(project).items() if rule["approval"]}
    if platform == "github_actions":
        approved = job.environment == prod or job.environment in approvers
        return f"required reviewers (environment {job.environment})" if approved else ""
    if platform == "azure_devops":
        if job.connection:  # checks on the service connection: docs/ci-setup.md's table
            approved = job.connection in approvers
            return f"approvals (service connection {job.connection})" if approved else ""
        return f"approvals (environment {job.environment})" if job.environment == f"{where.slug}-prod" else ""
    rules = job.raw.get("rules", [])
    manual = bool(rules) and all(r.get("when") == "manual" for r in rules)
    if manual and (job.environment == prod or job.environment in approvers):
        return f"manual job, protected environment {job.environment}"
    return ""


def identity_table(project: Path, platform: str, pattern: str) -> list[Row]:
    env_branches = _github_environment_branches(project, pattern) if platform == "github_actions" else {}
    rows = []
    for job in EXTRACT[platform](project):
        client = job.env.get("DATABRICKS_CLIENT_ID") if job.signs_in else None
        ops = [f"{verb} {key + ' ' if key else ''}-t {target}" for verb, key, target, _ in job.sequence()]
        ops += [f"always: {verb} -t {target}" for verb, _, target, _ in job.sequence(job.always)]
        rows.append(
            Row(
                file=job.file,
                job=job.name,
                triggers=", ".join(sorted(job.triggers)),
                branches=_branches(job, platform, env_branches),
                environment=job.environment or "",
                gate=_gate(job, platform, project),
                principal=PRINCIPALS.get(client, f"unknown {client}") if client else "-",
                ops="; ".join(ops),
            )
        )
    return rows


def format_table(rows: list[Row]) -> str:
    header = ("file", "job", "triggers", "branches", "environment", "approval gate", "signs in as", "databricks bundle")
    lines = [header] + [
        (r.file, r.job, r.triggers, ",".join(sorted(r.branches)), r.environment, r.gate, r.principal, r.ops)
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def identity_violations(project: Path, platform: str, pattern: str) -> list[str]:
    problems = []
    jobs = {job.name: job for job in EXTRACT[platform](project)}
    rows = identity_table(project, platform, pattern)
    per_file: dict[str, set[str]] = {}
    for row in rows:
        job = jobs[row.job]
        where = f"{row.file}:{row.job}"
        if job.signs_in:
            per_file.setdefault(row.file, set()).add(row.principal)
        if row.principal == "-":
            if job.uses_databricks:
                problems.append(f"{where} calls Databricks without signing in")
            continue
        targets = {t for _, _, t, _ in job.sequence(job.commands + "\n" + job.always)}
        if "pull_request" in job.triggers or "*" in row.branches:
            if row.principal != "ci":
                problems.append(f"{where}: a pull request (or any branch) can obtain the {row.principal} principal")
            if targets - {"test"}:
                problems.append(f"{where}: pull-request work reaches {sorted(targets - {'test'})}")
        if row.principal == "ci" and targets - {"test"}:
            problems.append(f"{where}: the CI principal reaches {sorted(targets - {'test'})}")
        if row.principal == "staging" and row.branches != {DEFAULT}:
            problems.append(f"{where}: the staging principal from {sorted(row.branches)}, not only {DEFAULT}")
        if row.principal == "prod":
            allowed = prod_branch(pattern, platform)
            if row.branches != {allowed}:
                problems.append(f"{where}: the prod principal from {sorted(row.branches)}, not only {allowed}")
            if not row.gate:
                problems.append(f"{where}: the prod principal without an approval")
        if row.principal.startswith("unknown"):
            problems.append(f"{where}: signs in as {row.principal}")
        # Every deploy is preceded by its --strict validate, in the same job.
        validated = set()
        for verb, _, target, rest in job.sequence():
            if verb == "validate":
                if "--strict" not in rest:
                    problems.append(f"{where}: validate -t {target} without --strict")
                else:
                    validated.add(target)
            if verb == "deploy" and target not in validated:
                problems.append(f"{where}: deploy -t {target} without a --strict validate before it in the job")
            if target == "test" and "deployment_id=" not in rest:
                problems.append(f"{where}: {verb} -t test without a per-pull-request deployment_id")
        deploys_test = any(v == "deploy" and t == "test" for v, _, t, _ in job.sequence())
        if deploys_test and not any(v == "destroy" and t == "test" for v, _, t, _ in job.sequence(job.always)):
            problems.append(f"{where}: deploys the test target without an always-run destroy")
        if job.uses_databricks and ("| sh" in job.commands or "| sudo sh" in job.commands):
            problems.append(f"{where}: pipes a downloaded script into sh")
        if platform == "gitlab":
            aud = job.raw["id_tokens"]["DATABRICKS_OIDC_TOKEN"]["aud"]
            if aud != f"{job.env['DATABRICKS_HOST']}/oidc/v1/token":
                problems.append(f"{where}: ID token audience {aud}, not the workspace token endpoint the CLI requests")
    # The CLI: built from source against the committed go.sum.
    problems += cli_pin_problems(project, platform, list(jobs.values()))
    if platform == "azure_devops":  # one principal per pipeline, but for the staging promotion's check
        for file, principals in per_file.items():
            if len(principals) > 1 and not (
                pattern == "deploy_models" and file == "promote-staging.yml" and principals == {"ci", "staging"}
            ):
                problems.append(f"{file}: one pipeline signs in as {sorted(principals)}")
        # The staging promotion: its CI principal job (the provenance check) runs before the
        # approval, bundles nothing and passes no approval itself; the staging principal only in
        # the approval-gated stage, after that check.
        promotion = [r for r in rows if r.file == "promote-staging.yml" and r.principal != "-"]
        checks = {r.job for r in promotion if r.principal == "ci"}
        for row in promotion:
            where = f"{row.file}:{row.job}"
            if row.principal == "ci" and (row.gate or jobs[row.job].ops):
                problems.append(f"{where}: the CI principal behind the approval, or running bundle commands")
            if row.principal == "staging" and not row.gate:
                problems.append(f"{where}: the staging principal outside the approval-gated stage")
            if row.principal == "staging" and checks and not checks <= jobs[row.job].needs:
                problems.append(f"{where}: the staging principal does not wait for the provenance check")
    if platform == "github_actions":  # concurrency: pull request work per pull request only
        for job in jobs.values():
            group = (
                (job.raw.get("concurrency") or {}).get("group", "")
                if isinstance(job.raw.get("concurrency"), dict)
                else ""
            )
            if "pull_request" in job.triggers and job.raw.get("concurrency") and "pull_request.number" not in group:
                problems.append(f"{job.file}:{job.name}: concurrency group {group!r} is shared between pull requests")
            if job.file == "promote.yml" and job.raw.get("concurrency"):
                problems.append(f"{job.file}:{job.name}: a promotion in concurrency group {group!r} can be dropped")
        for path in layout(project).ci_files(platform):  # a workflow-wide group: one per run, never shared
            workflow_group = (yaml.safe_load(path.read_text()).get("concurrency") or {}).get("group", "")
            if workflow_group and "github.run_id" not in workflow_group:
                problems.append(f"{path.name}: workflow concurrency group {workflow_group!r} can drop a run")
    if platform == "gitlab":
        for job in jobs.values():
            if "pull_request" in job.triggers and job.raw.get("resource_group"):
                if "$CI_MERGE_REQUEST_IID" not in job.raw["resource_group"]:
                    problems.append(
                        f"{job.name}: resource group {job.raw['resource_group']} shared between merge requests"
                    )
    return problems


# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_identity_table_holds(baked, platform, pattern, capsys):
    project = baked(cicd_platform=platform, deployment_pattern=pattern)
    rows = identity_table(project, platform, pattern)
    with capsys.disabled():
        print(f"\n{platform} x {pattern}\n{format_table(rows)}")
    assert identity_violations(project, platform, pattern) == []
    principals = {r.principal for r in rows}
    assert {"ci", "staging", "prod"} <= principals, principals
    # Each serving target gets a champion after CD, or the pipeline says why.
    text = "\n".join(r.ops for r in rows)
    if pattern in ("deploy_code", "hybrid"):
        assert "run model_training_job -t staging" in text
    assert ("run model_training_job -t prod" in text) == (pattern == "deploy_code")


@pytest.fixture(scope="module")
def old_template(tmp_path_factory) -> Path:
    """The template as it was at commit 5bbfd49, extracted from git."""
    root = tmp_path_factory.mktemp("old-template")
    archive = subprocess.run(["git", "-C", str(TEMPLATE_DIR), "archive", OLD_COMMIT], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_identity_checks_fail_on_the_old_ci_files(old_template, tmp_path, platform, pattern):
    project = Path(
        cookiecutter(
            str(old_template),
            no_input=True,
            output_dir=str(tmp_path),
            extra_context={"cicd_platform": platform, "deployment_pattern": pattern},
        )
    )
    problems = identity_violations(project, platform, pattern)
    text = "\n".join(problems)
    # The issue's findings, each seen on the old files:
    assert "a pull request (or any branch) can obtain the staging principal" in text, text
    assert "without --strict" in text, text
    assert "not built from .databricks-cli/go.sum" in text, text
    if pattern != "deploy_models":
        assert "without an always-run destroy" in text, text
    if platform == "azure_devops":
        assert "one pipeline signs in as ['prod', 'staging']" in text, text
    if platform == "gitlab":
        assert "pipes a downloaded script into sh" in text and "ID token audience" in text, text


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_identity_table_holds_for_a_project_in_a_repository_folder(tmp_path, platform, pattern):
    """The same trust rules for a project baked into a folder of a shared repository
    (project_root), whose CI files sit at the repository root with names of their own."""
    cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        output_dir=str(tmp_path),
        extra_context={"cicd_platform": platform, "deployment_pattern": pattern, "project_root": "ml/fares"},
    )
    project = tmp_path / "ml" / "fares"
    assert layout(project).mono and layout(project).repo == tmp_path
    rows = identity_table(project, platform, pattern)
    assert identity_violations(project, platform, pattern) == []
    assert {"ci", "staging", "prod"} <= {r.principal for r in rows}
    slug = layout(project).slug
    assert all(r.environment.startswith(f"{slug}-") for r in rows if r.environment), rows
    assert any(r.gate for r in rows if r.principal == "prod")


# --------------------------------------------------------------------------------------
# The attacker of issue 16, against the trust docs/ci-setup.md sets up

ATTACKER_BRANCH = "attacker"


def _policies(project: Path) -> list[tuple[str, str, str]]:
    """(principal, claim, subject) of every federation policy docs/ci-setup.md creates; the
    pages before issue 16 had a four-column table whose subjects were all `sub`."""
    rows = [(PRINCIPALS.get(r["sp"], r["sp"]), r["claim"], r["subject"]) for r in federation_rows(project)]
    for row in _doc_rows(project):
        sp = re.search(r"\(`([0-9a-f-]{36})`\)", row[0])
        if sp and len(row) in (3, 4) and re.match(r"`(repo:|p://)", row[1]):
            rows.append((PRINCIPALS.get(sp.group(1), sp.group(1)), "sub", row[1].strip("`")))
    return rows


def _obtains(policies, claims: dict[str, str]) -> set[str]:
    """The principals whose policy accepts a token with these claims."""
    return {principal for principal, claim, subject in policies if claims.get(claim) == subject}


def _protection(project: Path) -> dict[str, dict]:
    """Environments (GitHub, GitLab) and service connections (Azure DevOps) with their branch
    rule and whether someone else must approve, from docs/ci-setup.md's tables."""
    found = {}
    for row in _doc_rows(project):
        name = re.fullmatch(r"`([\w.-]+)`", row[0])
        if not name or len(row) not in (2, 3):
            continue
        text = row[1]
        branches = set(re.findall(r"Deployment branches: `([^`]+)` only", text))
        branches |= set(re.findall(r"Branch control: `refs/heads/([^`]+)`", text))
        approval = bool(re.search(r"\*\*(Required reviewers|Approvals|Required approvals)\*\*", text))
        # Azure DevOps: a service connection (three columns) and an environment may share a name.
        entry = found.setdefault(name.group(1), {"branches": None, "approval": False, "connection": False})
        entry["branches"] = (entry["branches"] or set()) | branches or None
        entry["approval"] |= approval
        entry["connection"] |= len(row) == 3
    return found


def attacks(project: Path, platform: str, pattern: str) -> list[str]:
    """Ways an attacker obtains the staging or prod principal without a review; [] = none."""
    where = layout(project)
    doc = (project / "docs" / "ci-setup.md").read_text()
    policies = _policies(project)
    protection = _protection(project)
    jobs = EXTRACT[platform](project)
    rows = {r.job: r for r in identity_table(project, platform, pattern)}
    found: list[str] = []

    def report(who: str, principals: set[str]) -> None:
        for principal in sorted(principals & {"staging", "prod"}):
            found.append(f"{who} obtains the {principal} principal")

    if platform == "github_actions":
        custom = any(subject.startswith("repository_id:") for _, claim, subject in policies if claim == "sub")
        own_files = [p.name for p in where.ci_files(platform)]

        def token(file: str, ref: str, environment: str | None) -> dict[str, str]:
            rule = protection.get(environment, {}).get("branches") if environment else None
            if rule is not None and ref.removeprefix("refs/heads/") not in rule:
                return {}  # GitHub refuses to start the job
            context = f"environment:{environment}" if environment else f"ref:{ref}"
            sub = (
                f"repository_id:<repository-id>:{context}:job_workflow_ref:<owner>/<repo>/.github/workflows/{file}@{ref}"
                if custom
                else f"repo:<owner>/<repo>:{context}"
            )
            return {"sub": sub, "repository_id": "<repository-id>"}

        environments = [*protection, None]
        # 1. A pushed branch, with any of this project's workflow files edited or a new one.
        for file in [*own_files, "attacker.yml"]:
            for environment in environments:
                report(
                    f"a push of branch {ATTACKER_BRANCH} ({file}, environment {environment})",
                    _obtains(policies, token(file, f"refs/heads/{ATTACKER_BRANCH}", environment)),
                )
        # 2. Another project's (or any other) workflow file on a protected branch, reviewed by
        #    its own owners: it may name this project's environments; approvals still apply.
        for branch in {DEFAULT, prod_branch(pattern, platform)}:
            for environment in environments:
                if environment and protection.get(environment, {}).get("approval"):
                    continue
                report(
                    f"another workflow on {branch} naming environment {environment}",
                    _obtains(policies, token("other-project-cd.yml", f"refs/heads/{branch}", environment)),
                )
        # 3. A fork's pull request gets no OIDC token (GitHub); nothing to model.
    elif platform == "azure_devops":
        pipelines = {f"{where.slug}-{p.stem}" for p in where.ci_files(platform) if p.parent.name != "templates"}
        unguarded = {name for name, rule in protection.items() if rule["connection"] and rule["branches"] is None}
        # 1. A pushed branch whose copy of any pipeline's YAML triggers it: the pipeline's token,
        #    and any service connection whose branch control would not stop the branch.
        subjects = {f"p://<organization>/<project>/{p}" for p in pipelines}
        subjects |= {f"sc://<organization>/<project>/{c}" for c in unguarded}
        for subject in sorted(subjects):
            report(f"a push of branch {ATTACKER_BRANCH} ({subject})", _obtains(policies, {"sub": subject}))
        # 2. A fork's pull request builds only in the CI pipeline.
        report("a fork", _obtains(policies, {"sub": f"p://<organization>/<project>/{where.slug}-ci"}))
    else:
        can_push = "allowed to push: No one" not in doc

        def token(project_path: str, project_id: str, branch: str) -> dict[str, str]:
            sub = f"project_path:{project_path}:ref_type:branch:ref:{branch}"
            return {"sub": sub, "project_path": project_path, "project_id": project_id}

        # 1. A pushed branch with an edited .gitlab-ci.yml (any audience: the YAML chooses it).
        report(
            f"a push of branch {ATTACKER_BRANCH}",
            _obtains(policies, token("<group>/<project>", "<project-id>", ATTACKER_BRANCH)),
        )
        # 2. A fork's merge request pipeline, in the fork's project.
        for branch in (ATTACKER_BRANCH, DEFAULT, RELEASE):
            report("a fork", _obtains(policies, token("<fork-group>/<project>", "<fork-project-id>", branch)))
        # 3. A Maintainer who may push to the protected branches without a merge request.
        if can_push:
            for branch in {DEFAULT, prod_branch(pattern, platform)}:
                report(
                    f"a Maintainer pushing a job to {branch}",
                    _obtains(policies, token("<group>/<project>", "<project-id>", branch)),
                )
        # Prod and staging subjects must differ: the audience is the YAML's choice.
        staging = {s for p, c, s in policies if p == "staging"}
        if staging & {s for p, c, s in policies if p == "prod"}:
            found.append("a job of the staging branch obtains the prod principal (same subject)")
        if where.mono and "One GitLab project per ML project is the safe layout" not in doc:
            found.append("another project's CI file in this repository obtains its principals, undocumented")
    # A writer without a review starts, by hand, any job of a protected branch: one that signs
    # in as staging or prod must wait for someone else's approval.
    for job in jobs:
        row = rows[job.name]
        by_hand = any(t.startswith("manual") for t in job.triggers)
        if by_hand and row.principal in ("staging", "prod") and not _approved(job, platform, project, protection):
            found.append(
                f"a writer starting {job.file}:{job.name} by hand obtains the {row.principal} principal unreviewed"
            )
    return found


def _approved(job: CIJob, platform: str, project: Path, protection: dict[str, dict]) -> bool:
    if platform == "azure_devops":  # a check on the service connection, or (for the job) its environment
        return bool(protection.get(job.connection or job.environment, {}).get("approval"))
    if platform == "gitlab":
        manual = all(r.get("when") == "manual" for r in job.raw.get("rules", []))
        return manual and bool(protection.get(job.environment, {}).get("approval"))
    return bool(protection.get(job.environment, {}).get("approval"))


# --------------------------------------------------------------------------------------
# Azure DevOps scripts fail closed

# Commands a CI script calls, replaced by stand-ins: each prints what the script reads from it,
# chosen by the start of its arguments. fail_open_scripts runs each script once per command it
# calls, so the stand-in is a bash script: a Python one took 0.1 s a call, most of these tests' time.
ANSWERS = {
    "bundle summary": {
        "resources": {
            "registered_models": {"model": {"id": "test.s.m", "catalog_name": "test", "schema_name": "s", "name": "m"}}
        }
    },
    "model-versions list": [{"version": 1}],
    "model-versions get-by-alias": {"version": "3"},
    "model-versions get ": {"run_id": "r1"},
    "experiments get-run": {
        "run": {
            "data": {
                "tags": [
                    {"key": "git_commit", "value": "0123456789abcdef0123456789abcdef01234567"},
                    {"key": "job_run_id", "value": "7"},
                ]
            }
        }
    },
    "jobs get-run": {"job_id": 5},
    "jobs get ": {"settings": {"name": "[dev someone] <bundle>-model-training", "deployment": {"kind": "BUNDLE"}}},
    "workspace list": [{"path": "/root/pr1", "object_type": "DIRECTORY"}],
    "workspace get-status": {"modified_at": 0},
}
CURL_ANSWER = {"status": "completed", "state": "closed", "oidcToken": "id-token"}


def _printed(answer: object) -> str:
    """A bash command printing ``answer`` as JSON, the bundle's name (``$STUB_BUNDLE``) in place of <bundle>."""
    return "printf '%s\\n' '" + json.dumps(answer).replace("<bundle>", "'\"$STUB_BUNDLE\"'") + "'"


# Each call: its number (counted in $STUB_COUNT) and arguments logged to $STUB_LOG; call number
# $STUB_FAIL fails; `go build -o <path>` leaves the databricks stand-in at <path>.
STUB = "\n".join(
    [
        "#!/bin/bash",
        'name=${0##*/} args="$*" n=1',
        'if [ -f "$STUB_COUNT" ]; then count=$(<"$STUB_COUNT"); n=$((${count:-0} + 1)); fi',
        'printf %s "$n" > "$STUB_COUNT"',
        'printf \'%s %s %s\\n\' "$n" "$name" "$args" >> "$STUB_LOG"',
        '[ "$n" = "${STUB_FAIL:-0}" ] && exit 1',
        'if [ "$name" = go ]; then',
        "  out= previous=",
        '  for arg in "$@"; do [ "$previous" = -o ] && out=$arg; previous=$arg; done',
        '  if [ -n "$out" ]; then',
        '    here=$(cd "${0%/*}" && pwd)',
        '    mkdir -p "${out%/*}" && ln -s "$here/databricks" "$out" || exit 1',
        "  fi",
        "fi",
        'case "$args " in',
        *(f"  {json.dumps(key)}*) {_printed(answer)} ;;" for key, answer in ANSWERS.items()),
        f'  *) if [ "$name" = curl ]; then {_printed(CURL_ANSWER)}; fi ;;',
        "esac",
        "",
    ]
)
STUBBED = ("databricks", "uv", "uvx", "go", "curl", "git", "python", "pip", "sudo", "az", "make")
# Calls whose failure a script handles on purpose: "is there an endpoint to delete?", "has any
# pull request deployed a test copy yet?" (the test root itself, not a copy's state file).
TOLERATED = re.compile(r"databricks (serving-endpoints get \S+|workspace get-status \S+/test)$")


def _run_script(body: str, work: Path, fail_at: int, project: Path) -> tuple[int, list[str]]:
    stubs = work / "bin"
    if not stubs.exists():
        stubs.mkdir(parents=True)
        for name in STUBBED:
            (stubs / name).write_text(STUB)
            (stubs / name).chmod(0o755)
        root = layout(project).root
        module = work / "src" / (root if root != "." else "") / ".databricks-cli"
        module.mkdir(parents=True)
        from test_cicd import CLI_GO_SUM

        (module / "go.sum").write_text("\n".join(CLI_GO_SUM) + "\n")
    for name in ("count", "log"):
        (work / name).unlink(missing_ok=True)
    script = work / "step.sh"
    script.write_text(body)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(work),
        "STUB_COUNT": str(work / "count"),
        "STUB_LOG": str(work / "log"),
        "STUB_FAIL": str(fail_at),
        "STUB_BUNDLE": layout(project).slug,
        "BUILD_SOURCESDIRECTORY": str(work / "src"),
        "PIPELINE_WORKSPACE": str(work),
        "SYSTEM_PULLREQUEST_PULLREQUESTID": "1",
        "MODEL_VERSION": "",
        "SOURCE_MODEL": "dev.s.m",
        "MAX_AGE_DAYS": "3",
        "SYSTEM_ACCESSTOKEN": "t",
        "SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/org/p/_apis/distributedtask/hubs/build/plans/x/jobs/y/oidctoken",
        # What Azure DevOps sets for every step.
        "JAVA_HOME_17_X64": "/usr/lib/jvm/java-17",
        "BUILD_REQUESTEDFOR": "A Person",
        "BUILD_BUILDID": "9",
        "BUILD_REPOSITORY_ID": "r",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/org/",
        "SYSTEM_TEAMPROJECTID": "p",
        # A pipeline resource's run: the source branch of the staging promotion it comes from.
        "RESOURCES_PIPELINE_PROMOTESTAGING_SOURCEBRANCH": "refs/heads/main",
    }
    # The staging promotion's stage output variables: the version CheckProvenance checked, and the
    # SHA-256 of the CLI it built and published (artifact databricks-cli).
    (work / "databricks-cli").mkdir(exist_ok=True)
    (work / "databricks-cli" / "databricks").write_text(STUB)
    env["CHECKED_VERSION"] = "3"
    env["CLI_SHA256"] = hashlib.sha256((work / "databricks-cli" / "databricks").read_bytes()).hexdigest()
    (work / "promoteStaging" / "promotion").mkdir(parents=True, exist_ok=True)
    (work / "promoteStaging" / "promotion" / "staging_version").write_text("3\n")
    # What the script task runs: the body in a file, `bash --noprofile --norc <file>`.
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", str(script)], cwd=work / "src", env=env, capture_output=True
    )
    log = (work / "log").read_text().splitlines() if (work / "log").exists() else []
    return result.returncode, log


def fail_open_scripts(project: Path, platform: str, work: Path) -> list[str]:
    """Azure DevOps script steps whose step passes although a command in them failed."""
    if platform != "azure_devops":
        return []
    problems = []
    bodies = {}
    for job in EXTRACT[platform](project):
        for body in job.scripts:
            bodies.setdefault(body, f"{job.file}:{job.name}")
    for body, where in bodies.items():
        code, calls = _run_script(body, work, 0, project)
        if code != 0:
            problems.append(f"{where}: the step fails although every command succeeded")
        for index, call in enumerate(calls, start=1):
            if TOLERATED.match(call.split(" ", 1)[1]):
                continue
            failed_code, _ = _run_script(body, work, index, project)
            if failed_code == 0:
                command = call.split(" ", 1)[1]
                problems.append(f"{where}: the step passes although `{command}` failed")
                break
    return problems


# --------------------------------------------------------------------------------------
# The sweeper, and what a job that holds a token builds with


def sweeper_problems(project: Path, platform: str) -> list[str]:
    jobs = EXTRACT[platform](project)
    ci = next(sp for sp, name in PRINCIPALS.items() if name == "ci")
    sweepers = [j for j in jobs if any(t.startswith("schedule") for t in j.triggers) and j.uses_databricks]
    problems = [] if sweepers else ["no scheduled sweeper of leftover test copies"]
    for job in sweepers:
        where = f"{job.file}:{job.name}"
        if job.env.get("DATABRICKS_CLIENT_ID") != ci or not job.signs_in:
            problems.append(f"{where}: the sweeper does not sign in as the CI principal")
        if {t for _, _, t, _ in job.sequence(job.commands + job.always)} != {"test"}:
            problems.append(f"{where}: the sweeper reaches more than the test target")
        if f"/Workspace/Users/{ci}/.bundle/{layout(project).slug}/test" not in job.commands:
            problems.append(f"{where}: the sweeper does not list the CI principal's test copies")
        if not str(job.env.get("MAX_AGE_DAYS", "")).isdigit():
            problems.append(f"{where}: the sweeper has no age limit")
    # Every destroy of a test copy deletes the copy's model versions first (the tear-down macro,
    # which fails the bake for any target but dev and test).
    for job in jobs:
        for text in (job.commands, job.always):
            if "databricks bundle destroy -t test" in text:
                before = text[: text.index("databricks bundle destroy -t test")]
                if "databricks model-versions delete" not in before:
                    problems.append(f"{job.file}:{job.name}: destroys a test copy without deleting its model versions")
    return problems


def build_problems(project: Path, platform: str) -> list[str]:
    """Jobs that can obtain a token build the wheel only with hash-pinned build requirements,
    install tools by hash, and (GitLab) run on images pinned by digest."""
    import tomllib

    problems = []
    requires = tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"]
    constraints = project / "build-constraints.txt"
    pinned = {}
    if constraints.is_file():
        for line in constraints.read_text().splitlines():
            match = re.match(r"([A-Za-z0-9_.-]+)==\S+ --hash=sha256:[0-9a-f]{64}$", line)
            if match:
                pinned[match.group(1).lower()] = line
    for requirement in requires:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        if name not in pinned:
            problems.append(f"build requirement {name} is not pinned by hash in build-constraints.txt")
    for job in EXTRACT[platform](project):
        where = f"{job.file}:{job.name}"
        if job.signs_in and any(v == "deploy" for v, _, _, _ in job.sequence()):
            if job.env.get("UV_BUILD_CONSTRAINT") != "build-constraints.txt" or job.env.get(
                "UV_REQUIRE_HASHES"
            ) not in ("1", "true"):
                problems.append(f"{where}: builds the wheel with a token in reach and unpinned build requirements")
        if re.search(r"pip install(?![^\n]*--require-hashes)[^\n]*\buv\b", job.commands):
            problems.append(f"{where}: installs uv without hashes")
    if platform == "gitlab":
        images = []
        for path in layout(project).ci_files(platform):
            images += re.findall(r"^\s*image:\s*(\S+)", path.read_text(), flags=re.M)
        for image in images:
            if not re.search(r"@sha256:([0-9a-f]{64}|REPLACE-WITH-THE-DIGEST-OF-[\w.-]+)$", image):
                problems.append(f"image {image} is not pinned by digest")
    return problems


# --------------------------------------------------------------------------------------


def _bake_layouts(tmp_path: Path, template: Path, platform: str, pattern: str) -> list[Path]:
    """The project at the repository root and in a folder of a shared repository."""
    projects = []
    for root in (".", "ml/fares"):
        out = tmp_path / root.replace("/", "_")
        context = {"cicd_platform": platform, "deployment_pattern": pattern, "include_serving_endpoint": True}
        if root != ".":
            context["project_root"] = root
        baked = Path(cookiecutter(str(template), no_input=True, output_dir=str(out), extra_context=context))
        projects.append(out / root if root != "." else baked)
    return projects


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_no_attacker_reaches_staging_or_prod(tmp_path, platform, pattern):
    for project in _bake_layouts(tmp_path, TEMPLATE_DIR, platform, pattern):
        assert attacks(project, platform, pattern) == [], project
        assert fail_open_scripts(project, platform, tmp_path / "run" / project.name) == []
        assert sweeper_problems(project, platform) == []
        assert build_problems(project, platform) == []
        assert identity_violations(project, platform, pattern) == []


@pytest.fixture(scope="module")
def template_before_issue_16(tmp_path_factory) -> Path:
    """The template as it was before issue 16, extracted from git."""
    root = tmp_path_factory.mktemp("before-issue-16")
    archive = subprocess.run(
        ["git", "-C", str(TEMPLATE_DIR), "archive", BEFORE_ISSUE_16], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_new_checks_fail_on_the_ci_files_from_before_issue_16(
    template_before_issue_16, tmp_path, platform, pattern
):
    project, mono = _bake_layouts(tmp_path, template_before_issue_16, platform, pattern)
    found = "\n".join(attacks(project, platform, pattern) + attacks(mono, platform, pattern))
    if platform == "azure_devops":  # finding 1: a pushed branch runs a copy of the prod pipeline
        pipeline = "p://<organization>/<project>/my_mlops_project-cd-prod"
        assert f"a push of branch {ATTACKER_BRANCH} ({pipeline}) obtains the prod principal" in found, found
        scripts = "\n".join(fail_open_scripts(project, platform, tmp_path / "run"))
        assert "the step passes although `uv run ruff check .` failed" in scripts, scripts  # finding 2
        assert "the step passes although `curl" in scripts, scripts  # the CLI install, with another CLI on PATH
    if platform == "gitlab":  # finding 3: a Maintainer's job on a protected branch
        old_prod_branch = DEFAULT if pattern == "deploy_models" else RELEASE
        assert f"a Maintainer pushing a job to {old_prod_branch} obtains the prod principal" in found, found
        if pattern == "deploy_models":
            assert "a job of the staging branch obtains the prod principal (same subject)" in found, found
    if platform == "github_actions":  # finding 8: another workflow names this project's environment
        assert (
            "another workflow on main naming environment my_mlops_project-staging obtains the staging principal"
            in found
        ), found
    if pattern == "deploy_models":  # finding 7: the staging promotion, by hand, unreviewed
        assert "by hand obtains the staging principal unreviewed" in found, found
    jobs = EXTRACT[platform](project)
    assert any(
        "not built from .databricks-cli/go.sum" in p for p in cli_pin_problems(project, platform, jobs)
    )  # finding 4
    assert "no scheduled sweeper of leftover test copies" in sweeper_problems(project, platform)  # finding 10
    if pattern != "deploy_models":  # the trained copy's model versions block destroy (issue 15)
        assert any("without deleting its model versions" in p for p in sweeper_problems(project, platform))
    builds = "\n".join(build_problems(project, platform))  # finding 5
    assert "hatchling is not pinned by hash" in builds and "unpinned build requirements" in builds, builds
    if platform == "gitlab":
        assert "image python:3.12-bookworm is not pinned by digest" in builds, builds
    if platform != "github_actions":
        assert "installs uv without hashes" in builds, builds


def test_the_staging_promotion_signs_in_as_the_ci_principal_only_before_its_approval(tmp_path):
    """Azure DevOps, deploy_models: `promote-staging` is the one pipeline that signs in as two
    principals, the CI principal for the provenance check (a stage without approval) and the
    staging principal in the approval-gated stage after it. Each rule still catches a pipeline
    that swaps them, lets the staging principal in before the approval, or skips the check."""
    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            output_dir=str(tmp_path),
            extra_context={"cicd_platform": "azure_devops", "deployment_pattern": "deploy_models"},
        )
    )
    assert identity_violations(project, "azure_devops", "deploy_models") == []
    path = project / ".azure" / "pipelines" / "promote-staging.yml"
    good = path.read_text()
    ci, staging = (next(sp for sp, name in PRINCIPALS.items() if name == n) for n in ("ci", "staging"))

    def violations(text: str) -> str:
        path.write_text(text)
        return "\n".join(identity_violations(project, "azure_devops", "deploy_models"))

    # The check signs in as the staging principal, before any approval.
    check, rest = good.split("  - stage: PromoteStaging", 1)
    found = violations(check.replace(ci, staging) + "  - stage: PromoteStaging" + rest)
    assert "CheckProvenance.CheckProvenance: the staging principal outside the approval-gated stage" in found, found
    # The gated stage goes through the CI principal's connection: no approval before the staging principal.
    found = violations(check + "  - stage: PromoteStaging" + rest.replace("-staging-promotion", "-ci-provenance"))
    assert "PromoteStaging.PromoteStaging: the staging principal outside the approval-gated stage" in found, found
    # The gated stage no longer waits for the check.
    found = violations(
        good.replace("dependsOn: [BuildDatabricksCli, CheckProvenance]", "dependsOn: [BuildDatabricksCli]")
    )
    assert "the staging principal does not wait for the provenance check" in found, found
    # Another pipeline signing in as these two principals is still refused.
    path.write_text(good)
    (path.parent / "promote-again.yml").write_text(good)
    found = "\n".join(identity_violations(project, "azure_devops", "deploy_models"))
    assert "promote-again.yml: one pipeline signs in as ['ci', 'staging']" in found, found
