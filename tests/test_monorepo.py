"""Several projects in one repository (``project_root``), on every CI platform.

Two projects are baked into one repository, the way the template README says
(``cookiecutter <template> -o <repository> project_root=<folder>``): the first in a nested
folder whose name differs from its slug, the second in a folder named after its slug. Every
file is hashed after the first bake and compared after the second: nothing may change. Both
projects' CI files are schema-checked, their path filters are evaluated against the files of
the repository, and the identity checks of test_ci_identities run on each project.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import test_cicd
import yaml
from bake import TEMPLATE_DIR
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from test_ci_identities import identity_table, identity_violations
from test_cicd import EXTRACT, PLATFORMS, check_schema, executable, gitlab_config, gitlab_documents, layout

# (slug, project_root, deployment_pattern)
FIRST = ("fare_model", "services/fare_model", "deploy_models")
SECOND = ("churn", "churn", "hybrid")


def bake_into(repo: Path, slug: str, root: str, pattern: str, platform: str, **answers: object) -> Path:
    """Bake a project into the repository ``repo``; return the project's folder."""
    cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        output_dir=str(repo),
        extra_context={
            "project_slug": slug,
            "project_root": root,
            "deployment_pattern": pattern,
            "cicd_platform": platform,
            **answers,
        },
    )
    return repo / root


def snapshot(repo: Path) -> dict[str, str]:
    return {
        p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file()
    }


def glob_regex(pattern: str) -> re.Pattern:
    """A path filter as GitHub, Azure Pipelines and GitLab read it: `**` any folders, `*` within one."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def matched(filters: list[str], files: list[str]) -> set[str]:
    regexes = [glob_regex(f) for f in filters]
    return {f for f in files if any(r.fullmatch(f) for r in regexes)}


@pytest.fixture(scope="module", params=PLATFORMS)
def repository(request, tmp_path_factory):
    """(platform, repository, first project, second project, hashes after the first bake)."""
    platform = request.param
    repo = tmp_path_factory.mktemp(f"repo-{platform}")
    first = bake_into(repo, *FIRST, platform)
    after_first = snapshot(repo)
    second = bake_into(repo, *SECOND, platform)
    return platform, repo, first, second, after_first


# Files each project puts at the repository root, per platform.
def root_ci_files(platform: str, slug: str, pattern: str) -> set[str]:
    if platform == "github_actions":
        names = ["ci", "cd", "sweep"] + (["promote"] if pattern != "deploy_code" else [])
        actions = {f".github/actions/{slug}-{a}/action.yml" for a in ("build-databricks-cli", "databricks-cli")}
        return {f".github/workflows/{slug}-{n}.yml" for n in names} | actions
    if platform == "azure_devops":
        names = ["ci", "cd", "cd-prod", "sweep"] + (["promote"] if pattern != "deploy_code" else [])
        names += ["promote-staging"] if pattern == "deploy_models" else []
        templates = ["install-databricks-cli", "setup-python", "setup-uv"]
        templates += ["databricks-cli"] if pattern == "deploy_models" else []  # the checked CLI of a later stage
        return {f".azure/pipelines/{slug}/{n}.yml" for n in names} | {
            f".azure/pipelines/{slug}/templates/{t}.yml" for t in templates
        }
    return {".gitlab-ci.yml", f".gitlab/ci/{slug}.yml"}


def test_the_second_bake_changes_no_file_of_the_first(repository):
    platform, repo, first, second, after_first = repository
    after_second = snapshot(repo)
    changed = {f for f, digest in after_first.items() if after_second.get(f) != digest}
    assert not changed, f"the second bake changed or removed {sorted(changed)}"
    added = set(after_second) - set(after_first)
    own = {f for f in added if f.startswith(f"{SECOND[1]}/")}
    assert added - own == root_ci_files(platform, SECOND[0], SECOND[2]) - set(after_first)
    if platform == "gitlab":  # the one root file both need is the same for both
        assert ".gitlab-ci.yml" in after_first and ".gitlab-ci.yml" not in added


def test_each_project_has_its_files_in_its_folder_and_its_ci_at_the_root(repository, tmp_path):
    platform, repo, first, second, _ = repository
    files = set(snapshot(repo))
    tops = {f.split("/")[0] for f in files}
    ci_tops = {".github", ".azure", ".gitlab", ".gitlab-ci.yml"}
    assert tops - ci_tops == {"services", "churn"}, tops
    assert not (repo / FIRST[0]).exists(), "the baked folder of the first project was left behind"
    expected_root = root_ci_files(platform, *FIRST[:1], FIRST[2]) | root_ci_files(platform, *SECOND[:1], SECOND[2])
    assert {f for f in files if f.split("/")[0] in ci_tops} == expected_root
    for project, (slug, root, pattern) in ((first, FIRST), (second, SECOND)):
        assert (project / "databricks.yml").is_file() and (project / "src" / slug / "__init__.py").is_file()
        for rel in (".github", ".azure", ".gitlab-ci.yml", ".gitlab"):
            assert not (project / rel).exists(), f"{root}/{rel}"
        # The project itself is what a project of its own would be, CI files aside.
        alone = Path(
            cookiecutter(
                str(TEMPLATE_DIR),
                no_input=True,
                output_dir=str(tmp_path / slug),
                extra_context={"project_slug": slug, "deployment_pattern": pattern, "cicd_platform": platform},
            )
        )
        skip = {".cookiecutter-replay.json", "ci-setup.md", "README.md"}
        readme = (project / "README.md").read_text().splitlines()
        extra = [line for line in readme if "the CI files are at the repository root" in line]
        assert (
            len(extra) == 1 and [x for x in readme if x not in extra] == (alone / "README.md").read_text().splitlines()
        )
        compare = filecmp.dircmp(alone, project, ignore=[*skip, ".github", ".azure", ".gitlab-ci.yml"])
        differing = []

        def walk(cmp, prefix="", out=differing):
            out += [prefix + f for f in cmp.diff_files + cmp.left_only + cmp.right_only]
            for name, sub in cmp.subdirs.items():
                walk(sub, f"{prefix}{name}/")

        walk(compare)
        assert differing == [], differing
        replay = json.loads((project / ".cookiecutter-replay.json").read_text())["cookiecutter"]
        assert replay["project_root"] == root


def test_ci_files_are_valid(repository):
    platform, repo, first, second, _ = repository
    for project in (first, second):
        check_schema(project, platform)
    if platform == "github_actions":
        result = subprocess.run(
            [executable("zizmor"), "--offline", "--no-ignores", "--format", "json", str(repo / ".github")],
            capture_output=True,
            text=True,
        )
        assert json.loads(result.stdout or "[]") == [], result.stdout[:4000]
        assert result.returncode == 0, result.stderr


def test_identity_checks_hold_for_each_project(repository, capsys):
    platform, repo, first, second, _ = repository
    from test_ci_identities import format_table

    for project, (slug, _, pattern) in ((first, FIRST), (second, SECOND)):
        rows = identity_table(project, platform, pattern)
        with capsys.disabled():
            print(f"\n{platform} x {pattern} in {layout(project).root}\n{format_table(rows)}")
        assert identity_violations(project, platform, pattern) == []
        assert {"ci", "staging", "prod"} <= {r.principal for r in rows}
        # Every environment of this project is its own.
        environments = {r.environment for r in rows if r.environment}
        assert environments and all(e.startswith(f"{slug}-") for e in environments), environments


def test_the_projects_share_no_name(repository):
    """Workflow/pipeline names, environments, concurrency and resource groups, GitLab keys."""
    platform, repo, first, second, _ = repository
    seen: dict[str, set[str]] = {}
    for project in (first, second):
        jobs = EXTRACT[platform](project)
        names = {
            "environment": {j.environment for j in jobs if j.environment},
            "concurrency": {j.concurrency.split("${{")[0] for j in jobs if j.concurrency},
        }
        if platform == "github_actions":
            names["workflow"] = {yaml.safe_load(p.read_text())["name"] for p in layout(project).ci_files(platform)}
        if platform == "gitlab":
            _, config = gitlab_config(project)
            names["key"] = set(gitlab_documents(layout(project).ci_files(platform)[-1])[1])
        for kind, values in names.items():
            assert values, (kind, project)
            clash = seen.get(kind, set()) & values
            assert not clash, f"{kind} shared by both projects: {sorted(clash)}"
            seen.setdefault(kind, set()).update(values)


def _filters(platform: str, project: Path) -> dict[str, list[str]]:
    """Path filters per trigger of the project's CI files."""
    where = layout(project)
    out = {}
    for path in where.ci_files(platform):
        data = gitlab_documents(path)[1] if platform == "gitlab" else yaml.safe_load(path.read_text())
        name = path.relative_to(where.repo).as_posix()
        if platform == "github_actions":
            on = data.get("on", data.get(True))
            for event in ("pull_request", "push"):
                if event in on:
                    out[f"{name}:{event}"] = on[event]["paths"]
        elif platform == "azure_devops" and path.parent.name != "templates":
            for key in ("trigger", "pr"):
                if isinstance(data.get(key), dict):
                    out[f"{name}:{key}"] = data[key]["paths"]["include"]
        elif platform == "gitlab" and name != ".gitlab-ci.yml":
            for job, spec in data.items():
                if job.startswith(".") or not isinstance(spec, dict):
                    continue
                for rule in spec.get("rules", []):
                    if '"web"' not in rule["if"] and '"schedule"' not in rule["if"]:  # no changes to compare
                        out[f"{name}:{job}:{rule['if']}"] = rule.get("changes", [])
    return out


def test_path_filters_select_exactly_the_project_and_its_ci_files(repository):
    platform, repo, first, second, _ = repository
    files = list(snapshot(repo))
    # Paths a careless filter would also take: a sibling folder with the same prefix, another
    # project whose slug starts with this one's.
    decoys = [f"{r}{tail}" for r in (FIRST[1], SECOND[1]) for tail in ("_v2/src/x.py", "-old/README.md", ".txt")]
    decoys += [f".github/workflows/{s}_2-ci.yml" for s in (FIRST[0], SECOND[0])]
    decoys += [f".github/actions/{s}_2-databricks-cli/action.yml" for s in (FIRST[0], SECOND[0])]
    decoys += [f".azure/pipelines/{s}_2/ci.yml" for s in (FIRST[0], SECOND[0])]
    decoys += [f".gitlab/ci/{s}_2.yml" for s in (FIRST[0], SECOND[0])]
    files += decoys
    for project in (first, second):
        where = layout(project)
        own = {f for f in files if f.startswith(f"{where.root}/")}
        own_ci = {p.relative_to(repo).as_posix() for p in where.ci_files(platform)} - {".gitlab-ci.yml"}
        own_ci |= {f for f in files if f.startswith(f".github/actions/{where.slug}-")}  # its local actions
        filters = _filters(platform, project)
        assert filters, project
        for trigger, paths in filters.items():
            assert matched(paths, files) == own | own_ci, trigger


def test_jobs_work_inside_the_project_folder(repository):
    platform, repo, first, second, _ = repository
    for project in (first, second):
        where = layout(project)
        texts = {p.name: p.read_text() for p in where.ci_files(platform)}
        if platform == "github_actions":
            for path in where.ci_files(platform):
                wf = yaml.safe_load(path.read_text())
                assert wf["defaults"]["run"]["working-directory"] == where.root, path.name
                for job in wf["jobs"].values():
                    for step in job["steps"]:
                        if "setup-uv" in step.get("uses", "") and step["with"].get("enable-cache"):
                            assert step["with"]["cache-dependency-glob"] == f"{where.root}/uv.lock"
        elif platform == "azure_devops":

            def scripts(node):
                if isinstance(node, dict):
                    if "script" in node:
                        yield node
                    for value in node.values():
                        yield from scripts(value)
                elif isinstance(node, list):
                    for value in node:
                        yield from scripts(value)

            steps = [s for p in where.ci_files(platform) for s in scripts(yaml.safe_load(p.read_text()))]
            assert steps
            for step in steps:
                if "databricks --version" in step["script"] or "pip install" in step["script"]:
                    continue  # installs tools; runs anywhere
                if "SYSTEM_OIDCREQUESTURI" in step["script"]:
                    continue  # mints the ID token before the checkout: reads no file
                assert step.get("workingDirectory") == f"$(Build.SourcesDirectory)/{where.root}", step
            assert f"| {where.root}/uv.lock" in texts["setup-uv.yml"]
        else:
            for job in EXTRACT[platform](project):
                assert job.commands.startswith(f'cd "$CI_PROJECT_DIR/{where.root}"'), job.name
                if job.always:
                    assert job.always.startswith(f'cd "$CI_PROJECT_DIR/{where.root}"'), job.name
                if "artifacts" in job.raw:  # the CLI built in this pipeline, or the checked version
                    assert job.raw["artifacts"]["paths"] in (
                        [f"{where.root}/.databricks-cli/bin/"],
                        [f"{where.root}/provenance.version"],
                    )


def test_a_collision_is_refused_before_anything_is_written(tmp_path, capfd):
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    mine = repo / ".github" / "workflows" / "fare_model-cd.yml"
    mine.write_text("name: my own workflow\n")
    (repo / "services" / "fare_model").mkdir(parents=True)
    (repo / "services" / "fare_model" / "notes.txt").write_text("mine\n")
    before = snapshot(repo)
    with pytest.raises(FailedHookException):
        bake_into(repo, *FIRST, "github_actions")
    err = capfd.readouterr().err
    assert f"{mine} exists with other content" in err, err
    assert "Nothing in the repository was changed" in err
    assert snapshot(repo) == before
    assert sorted(p.name for p in repo.iterdir()) == [".github", "services"]


def test_a_bad_project_root_is_refused_naming_the_key(tmp_path, capfd):
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(FailedHookException) as refused:
        bake_into(repo, "fare_model", "../elsewhere", "deploy_code", "github_actions")
    # The answers are checked while cookiecutter collects them (local_extensions.py), so the
    # refusal is the exception's message; the pre-generation hook would print the same rule.
    message = str(refused.value) + capfd.readouterr().err
    assert "project_root='../elsewhere'" in message and "'..'" in message, message
    assert list(repo.iterdir()) == [] and not (tmp_path / "elsewhere").exists()


def test_each_projects_ci_setup_lists_its_own_subjects_and_environments(repository):
    """docs/ci-setup.md of each project: exactly the federation subjects and environments its
    CI files use (the checks of test_cicd, on the projects of a shared repository)."""
    platform, repo, first, second, _ = repository
    subjects = []
    for project, (_, root, pattern) in ((first, FIRST), (second, SECOND)):
        jobs = EXTRACT[platform](project)
        test_cicd.test_ci_setup_lists_exactly_the_federation_subjects(project, platform, jobs)
        test_cicd.test_ci_setup_documents_environments_approvals_and_grants(project, platform, pattern, jobs)
        doc = (project / "docs" / "ci-setup.md").read_text()
        assert "## This project in a repository with others" in doc and f"`{root}/`" in doc
        ci = "00000000-0000-0000-0000-000000000003"  # may be shared: it reaches only a test target
        required = test_cicd._required_subjects(project, platform, jobs)
        subjects.append({subject for sp, _, subject in required if sp != ci})
    if platform != "gitlab":  # GitLab's subjects name the repository and branch only
        assert subjects[0] and not subjects[0] & subjects[1], subjects


def test_a_second_project_in_the_same_folder_is_refused(tmp_path, capfd):
    repo = tmp_path / "repo"
    repo.mkdir()
    bake_into(repo, *FIRST, "gitlab")
    before = snapshot(repo)
    with pytest.raises(FailedHookException):
        bake_into(repo, "churn", FIRST[1], "deploy_code", "gitlab")
    err = capfd.readouterr().err
    assert f"{repo / FIRST[1] / 'databricks.yml'} exists with other content" in err, err
    assert snapshot(repo) == before and not (repo / "churn").exists()
