"""Who can obtain which Databricks identity, computed from the parsed CI files.

For every platform x pattern, ``identity_table`` lists each job with its triggers (event and
branch), CI environment, approval gate and the principal it signs in as (resolved from the
client ID in its environment). ``identity_violations`` checks the trust rules on that table:

- pull-request work only ever signs in as the CI principal, and only for the ``test`` target;
- the staging principal only from the default branch, the prod principal only from the
  pattern's prod branch, behind an approval;
- every deploy is preceded by its ``--strict`` validate in the same job; every test
  deployment is per pull request and is followed by an always-run destroy;
- every CLI that a job runs was downloaded and verified against the release's SHA-256 sums;
- Azure DevOps: one principal per pipeline (the federation subject names the pipeline);
  GitLab: the ID token audience is the one the CLI requests, the workspace token endpoint
  (databricks-sdk-go v0.171.0, config/experimental/auth/oidc/tokensource.go determineAudience).

The same checks run on the CI files of commit 5bbfd49 (the state before this work), baked
from that commit: they must fail there.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from bake import TEMPLATE_DIR
from cookiecutter.main import cookiecutter
from test_cicd import EXTRACT, PATTERNS, PLATFORMS, CIJob, layout

PRINCIPALS = {
    "00000000-0000-0000-0000-000000000003": "ci",
    "00000000-0000-0000-0000-000000000001": "staging",
    "00000000-0000-0000-0000-000000000002": "prod",
}
DEFAULT, RELEASE = "main", "release"
OLD_COMMIT = "5bbfd49"
SUMS = "databricks_cli_${version}_SHA256SUMS"


def prod_branch(pattern: str) -> str:
    return DEFAULT if pattern == "deploy_models" else RELEASE


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
    where = layout(project)
    prod = f"{where.prefix}prod"  # a project in a repository folder has environments of its own
    if platform == "github_actions":
        return f"required reviewers (environment {prod})" if job.environment == prod else ""
    if platform == "azure_devops":
        return f"approvals (environment {job.environment})" if job.environment == f"{where.slug}-prod" else ""
    rules = job.raw.get("rules", [])
    if job.environment == prod and rules and all(r.get("when") == "manual" for r in rules):
        return f"manual job, protected environment {prod}"
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
            if row.branches != {prod_branch(pattern)}:
                problems.append(
                    f"{where}: the prod principal from {sorted(row.branches)}, not only {prod_branch(pattern)}"
                )
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
        # The CLI: downloaded from the release and checked against its published sums, never piped into sh.
        if job.uses_databricks:
            text = job.commands
            if "| sh" in text or "| sudo sh" in text:
                problems.append(f"{where}: pipes a downloaded script into sh")
            if not (SUMS in text and "sha256sum --check --strict" in text):
                problems.append(f"{where}: runs a Databricks CLI not verified against the release's SHA-256 sums")
        if platform == "gitlab":
            aud = job.raw["id_tokens"]["DATABRICKS_OIDC_TOKEN"]["aud"]
            if aud != f"{job.env['DATABRICKS_HOST']}/oidc/v1/token":
                problems.append(f"{where}: ID token audience {aud}, not the workspace token endpoint the CLI requests")
    if platform == "azure_devops":  # the federation subject is the pipeline: one principal each
        for file, principals in per_file.items():
            if len(principals) > 1:
                problems.append(f"{file}: one pipeline signs in as {sorted(principals)}")
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
    # The findings, each seen on the old files:
    assert "a pull request (or any branch) can obtain the staging principal" in text, text
    assert "without --strict" in text, text
    assert "not verified against the release's SHA-256 sums" in text, text
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
