"""The real Databricks CLI on baked projects, against the CLI's own fake workspace.

The CLI is the version the template pins (clitest/go.mod), built from the Go module proxy by
tools/cli_build.py; the fake workspace is github.com/databricks/cli/libs/testserver, served by
clitest/. What the fake can and cannot tell is listed in docs/decisions.md.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_build import FAKE_SERVICE_PRINCIPAL
from helpers import DEFAULTS as DEFAULT_ANSWERS
from matrix import combinations
from realcli import (
    REQUIREMENTS_FILE,
    SERVICE_PRINCIPAL,
    USER,
    commit_all,
    head_of,
    identity_of,
    point_bundle_at,
    pointed_at_fake,
)

TARGETS = ("dev", "test", "staging", "prod")
PATTERNS = ("deploy_code", "deploy_models", "hybrid")
EMAILS = "ml-team@example.com"
# Every optional resource on, e-mails on every other combination (as test_deploy_rules.py).
COMBINATIONS = [
    {
        **combo,
        "include_monitoring": True,
        "include_serving_endpoint": True,
        "notification_emails": EMAILS if i % 2 else "",
    }
    for i, combo in enumerate(combinations())
]
IDS = ["-".join(str(v) for k, v in combo.items() if k != "project_slug") for combo in COMBINATIONS]


def deployable(baked, cli, tmp_path, **answers):
    """A baked project, copied to point at the fake and committed to git (as CI has it), and the
    workspace's catalogs and schemas for it."""
    project = pointed_at_fake(baked(**answers), cli.fake.url, tmp_path / "project")
    cli.prepare(project)
    return project


def clean_output(result: subprocess.CompletedProcess) -> str:
    text = result.stdout + result.stderr
    for word in ("Warning:", "Recommendation:", "Error:"):
        assert word not in text, text
    return text


# --- 1. validate --strict: every target of the option matrix ------------------------------


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=IDS)
def test_validate_strict_every_target(baked, cli, tmp_path, index):
    project = deployable(baked, cli, tmp_path, **COMBINATIONS[index])
    for target in TARGETS:
        result = cli.run(["bundle", "validate", "--strict", "-t", target], project, identity_of(target))
        assert "Validation OK!" in clean_output(result), target


@pytest.mark.parametrize("pattern", PATTERNS)
def test_validate_strict_and_deploy_with_feature_tables(baked, cli, tmp_path, pattern):
    """include_feature_store in every pattern: the feature job and the `features` tasks validate
    and deploy cleanly in every target, each computing its features in its own catalog."""
    answers = {"deployment_pattern": pattern, "include_feature_store": True, "include_serving_endpoint": True}
    project = deployable(baked, cli, tmp_path, project_slug=f"fs_{pattern}", **answers)
    # prod's source is a Unity Catalog table: its feature job starts when that table changes.
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    watched = {"table_names": [f"prod.fs_{pattern}.trips"], "wait_after_last_change_seconds": 3600}
    bundle["targets"]["prod"]["variables"]["feature_trigger"] = {"table_update": watched}
    (project / "databricks.yml").write_text(yaml.safe_dump(bundle, sort_keys=False))
    commit_all(project, "prod watches its source table")
    catalogs = bundle["targets"]
    for target in TARGETS:
        identity = identity_of(target)
        result = cli.run(["bundle", "validate", "--strict", "-t", target], project, identity)
        assert "Validation OK!" in clean_output(result), target
        assert "Deployment complete!" in clean_output(cli.run(["bundle", "deploy", "-t", target], project, identity))
        jobs, _ = deployed_jobs(cli, project, target, identity)
        catalog = catalogs[target]["variables"]["catalog"]
        for key, job in jobs.items():
            features = [t for t in job["tasks"] if t["task_key"] == "features"]
            if key == "feature_engineering_job":
                assert [t["task_key"] for t in job["tasks"]] == ["features"], target
            if features:
                named = features[0]["python_wheel_task"]["named_parameters"]
                assert named["catalog"] == catalog, (target, key)
                # With the serving endpoint, the jobs before a `serve` and the feature job publish online.
                publishes = key in ("feature_engineering_job", "model_training_job", "model_promotion_job")
                assert named.get("online_store") == (f"fs-{pattern.replace('_', '-')}-features" if publishes else None)
        trigger = jobs["feature_engineering_job"]["trigger"]
        assert "schedule" not in jobs["feature_engineering_job"]
        assert trigger.get("table_update" if target == "prod" else "periodic") == (
            watched if target == "prod" else {"interval": 1, "unit": "DAYS"}
        ), (target, trigger)
        # Paused where development mode (dev) or the presets (test) pause schedules.
        assert trigger["pause_status"] == ("PAUSED" if target in ("dev", "test") else "UNPAUSED"), (target, trigger)


# --- 2. deploy every target, then read back what the workspace holds -----------------------


# Whose principal each target deploys and runs its jobs as (test: the CI principal).
OWN_PRINCIPAL = {"test": "ci", "staging": "staging", "prod": "prod"}


def deployed_jobs(cli, project, target, identity, **extra) -> dict[str, dict]:
    summary = cli.json(["bundle", "summary", "-t", target], project, identity, **extra)
    return {
        key: cli.json(["jobs", "get", job["id"]], project, identity)["settings"]
        for key, job in summary["resources"]["jobs"].items()
    }, summary


@pytest.mark.parametrize("pattern", PATTERNS)
def test_deploy_every_target_and_read_it_back(baked, cli, tmp_path, pattern):
    answers = {
        "project_slug": f"real_{pattern}",
        "deployment_pattern": pattern,
        "include_monitoring": True,
        "include_serving_endpoint": True,
        "notification_emails": EMAILS,
    }
    project = deployable(baked, cli, tmp_path, **answers)
    head = head_of(project)
    models, promotion_sources = {}, {}
    variables = yaml.safe_load((project / "databricks.yml").read_text())["variables"]
    read_group, uc_read_group = variables["read_group"]["default"], variables["uc_read_group"]["default"]
    # Each target is deployed with its own principal (the bake's three distinct application
    # IDs, which the fake knows: conftest's -service-principals); the deployer is the fake's
    # service principal.
    own = {target: DEFAULT_ANSWERS[f"{who}_service_principal"] for target, who in OWN_PRINCIPAL.items()}
    for target in TARGETS:
        identity = identity_of(target)
        cli.run(["bundle", "deploy", "-t", target], project, identity, BUNDLE_VAR_service_principal=None)
        jobs, summary = deployed_jobs(cli, project, target, identity, BUNDLE_VAR_service_principal=None)
        assert jobs, target
        model = summary["resources"]["registered_models"]["model"]
        experiment = summary["resources"]["experiments"]["experiment"]
        root = summary["workspace"]["root_path"]
        for key, job in jobs.items():
            assert job["tags"] == {
                "project": f"real_{pattern}",
                "target": target,
                "deployment_pattern": pattern,
                **({"dev": "tester"} if target == "dev" else {}),
            }, (target, key)
            permissions = cli.json(
                ["permissions", "get", "jobs", str(summary["resources"]["jobs"][key]["id"])], project
            )
            levels = {
                (acl.get("group_name") or acl.get("service_principal_name") or acl.get("user_name")): {
                    p["permission_level"] for p in acl["all_permissions"]
                }
                for acl in permissions.get("access_control_list", [])
            }
            if target == "dev":
                assert job["name"].startswith("[dev tester] "), job["name"]
                assert "run_as" not in job or job["run_as"] == {"user_name": "tester@databricks.com"}
            else:
                assert job["run_as"] == {"service_principal_name": own[target]}, (target, key)
                assert job["email_notifications"]["on_failure"] == [EMAILS], (target, key)
                assert "CAN_VIEW" in levels[read_group], levels
                assert levels[own[target]] & {"CAN_MANAGE", "IS_OWNER"}, levels
                assert not set(levels) & (set(own.values()) - {own[target]}), levels  # no other target's principal
            if key == "model_training_job":
                train = next(t for t in job["tasks"] if t["task_key"] == "train")["python_wheel_task"]
                assert train["named_parameters"]["model_name"] == model["name"]
                assert train["named_parameters"]["experiment_name"] == experiment["name"]
                assert {p["name"]: p["default"] for p in job["parameters"]}["git_commit"] == head
                assert train["named_parameters"]["target"] == target
        # The experiment lives in the deployment root; the model carries the target's prefix.
        assert experiment["name"].startswith(root + "/"), (experiment["name"], root)
        expected_name = {"dev": "dev_tester_", "test": "test_manual_"}.get(target, "") + f"real_{pattern}_model"
        assert model["name"] == expected_name
        grants = cli.json(["grants", "get", "function", model["id"]], project, identity)
        granted = {g["principal"]: set(g["privileges"]) for g in grants.get("privilege_assignments", [])}
        assert granted[uc_read_group] == {"EXECUTE"}, granted
        # Who copies from this model: the next target's principal, by identity.
        copier = {
            ("deploy_models", "dev"): own["staging"],
            ("deploy_models", "staging"): own["prod"],
            ("hybrid", "staging"): own["prod"],
        }.get((pattern, target))
        # deploy_models: the CI principal reads the dev version it checks before a staging promotion.
        checker = own["test"] if (pattern, target) == ("deploy_models", "dev") else None
        expected = {uc_read_group: {"EXECUTE"}, **({copier: {"EXECUTE"}} if copier else {})}
        assert granted == {**expected, **({checker: {"EXECUTE"}} if checker else {})}, granted
        models[target] = model["id"]
        if "model_promotion_job" in jobs:
            parameters = {p["name"]: p["default"] for p in jobs["model_promotion_job"]["parameters"]}
            promotion_sources[target] = parameters["source_model"]
    # A promotion's default source is a model that exists (staging's), or nothing: a dev model
    # carries its developer's prefix, so the run must name it.
    expected_sources = {
        "deploy_code": {},
        "deploy_models": {"staging": "", "prod": models["staging"]},
        "hybrid": {"prod": models["staging"]},
    }[pattern]
    assert promotion_sources == expected_sources


# --- 2b. Staging installs the hashed requirements exported from uv.lock ---------------------


@pytest.mark.parametrize("compute", ["serverless", "classic"])
def test_staging_jobs_install_the_uploaded_hashed_requirements(baked, cli, tmp_path, compute):
    """A staging deploy uploads the requirements file the deploy job exported (pointed_at_fake
    exports it from a lock of the runtime's versions, as the CI files do); the training job
    installs it with the wheel, and stops once someone edits the file in the workspace."""
    project = deployable(baked, cli, tmp_path, project_slug=f"pins_{compute}", compute=compute)
    exported = (project / REQUIREMENTS_FILE).read_text()
    assert "--hash=sha256:" in exported
    cli.run(["bundle", "deploy", "-t", "staging"], project, SERVICE_PRINCIPAL)
    summary = cli.json(["bundle", "summary", "-t", "staging"], project, SERVICE_PRINCIPAL)
    uploaded = f"{summary['workspace']['file_path']}/{REQUIREMENTS_FILE}"
    job = cli.json(["jobs", "get", str(summary["resources"]["jobs"]["model_training_job"]["id"])], project)
    settings = job["settings"]
    if compute == "serverless":
        (environment,) = settings["environments"]
        assert environment["spec"]["dependencies"][0] == f"-r {uploaded}", environment
    else:
        for task in settings["tasks"]:
            assert task["libraries"][0] == {"requirements": uploaded}, task
    text = cli.run(["workspace", "export", uploaded], project, SERVICE_PRINCIPAL).stdout
    assert text == exported
    cli.run(["bundle", "run", "model_training_job", "-t", "staging"], project, SERVICE_PRINCIPAL)
    # Edited after the export (a version the lock never held, its hash replaced): the run stops.
    tampered = tmp_path / "tampered.txt"
    tampered.write_text(re.sub(r"numpy==[\w.]+", "numpy==2.3.0", exported))
    cli.run(
        ["workspace", "import", uploaded, "--file", str(tampered), "--format", "AUTO", "--overwrite"],
        project,
        SERVICE_PRINCIPAL,
    )
    result = cli.run(["bundle", "run", "model_training_job", "-t", "staging"], project, SERVICE_PRINCIPAL, check=False)
    assert result.returncode != 0
    assert "Library installation failed" in result.stdout + result.stderr, result.stdout + result.stderr


# --- 3. prevent_destroy: moving the staging or prod model is refused ------------------------


@pytest.mark.parametrize("target", ["staging", "prod"])
@pytest.mark.parametrize("move", ["catalog", "schema", "model_name"])
def test_moving_a_protected_model_is_refused(baked, cli, tmp_path, target, move):
    project = deployable(baked, cli, tmp_path, project_slug="real_keep", deployment_pattern="hybrid")
    cli.run(["bundle", "deploy", "-t", target], project, SERVICE_PRINCIPAL)
    before = cli.json(["bundle", "summary", "-t", target], project, SERVICE_PRINCIPAL)["resources"]
    model_id = before["registered_models"]["model"]["id"]

    refused = cli.run(
        ["bundle", "deploy", "-t", target, "--var", f"{move}=elsewhere"], project, SERVICE_PRINCIPAL, check=False
    )
    assert refused.returncode != 0
    assert "prevent_destroy" in refused.stderr and "resources.registered_models.model" in refused.stderr, refused.stderr
    # Nothing changed: the model is where it was, the state still names it.
    assert cli.json(["registered-models", "get", model_id], project, SERVICE_PRINCIPAL)["full_name"] == model_id
    after = cli.json(["bundle", "summary", "-t", target], project, SERVICE_PRINCIPAL)["resources"]
    assert after["registered_models"]["model"]["id"] == model_id
    assert {k: j["id"] for k, j in after["jobs"].items()} == {k: j["id"] for k, j in before["jobs"].items()}


def test_renaming_the_experiment_is_an_update_not_a_recreate(baked, cli, tmp_path):
    """resources.yml: experiments are recreated only when artifact_location changes."""
    project = deployable(baked, cli, tmp_path, project_slug="real_rename", deployment_pattern="hybrid")
    cli.run(["bundle", "deploy", "-t", "prod"], project, SERVICE_PRINCIPAL)
    before = cli.json(["bundle", "summary", "-t", "prod"], project, SERVICE_PRINCIPAL)["resources"]["experiments"]
    moved = "${workspace.root_path}/renamed"
    cli.run(["bundle", "deploy", "-t", "prod", "--var", f"experiment_name={moved}"], project, SERVICE_PRINCIPAL)
    after = cli.json(
        ["bundle", "summary", "-t", "prod", "--var", f"experiment_name={moved}"], project, SERVICE_PRINCIPAL
    )["resources"]["experiments"]
    assert after["experiment"]["id"] == before["experiment"]["id"]
    assert after["experiment"]["name"].endswith("/renamed")


# --- 6 and 7. The offline rules against the real CLI, on the same broken bundles -----------

# What the real CLI says about each broken bundle of test_deploy_rules.py: the words its
# `bundle validate --strict` output must contain, or None where it accepts the bundle (the
# rule is then the template's policy, or a check only a real workspace makes: see the
# rule's docstring and mlops_local/rules.py KINDS).
REAL_CLI_VERDICTS = {
    "grant_to_workspace_group": None,  # server: Unity Catalog refuses `users`; the fake stores it
    "grant_without_privileges": "grant privileges is required",
    "target_run_as_with_monitor_and_endpoint": "run_as user that is different from the owner",
    "job_without_run_as": None,
    "promotion_grant_by_hand": None,
    "no_read_group_grant": None,
    "no_prevent_destroy": None,
    "roots_under_shared": "/Workspace/Shared",
    "production_without_root_path": None,
    "experiment_under_shared": None,  # server: the parent folder must exist
    "experiment_in_a_subfolder": None,  # server: the parent folder must exist
    "experiment_permission_overlap": "already has permissions set for",
    "endpoint_permission_overlap": "already has permissions set for",
    "job_without_failure_emails": None,
    "wheel_without_dynamic_version": None,
    "jobs_without_tags": None,
    "training_without_commit": None,
}


@pytest.fixture(scope="module")
def rules_project(baked):
    from test_deploy_rules import hybrid_answers

    return baked(**hybrid_answers())


def broken_copy(rules_project, name: str, url: str, dest: Path) -> Path:
    """The project with one broken bundle, written back as one databricks.yml."""
    from test_deploy_rules import BROKEN_BUNDLES, modules

    bundle_module, _ = modules(rules_project)
    config = copy.deepcopy(bundle_module.load_bundle(rules_project))
    if name:
        BROKEN_BUNDLES[name][1](config)
    config.pop("include", None)
    project = pointed_at_fake(rules_project, url, dest, git=False)
    shutil.rmtree(project / "resources")
    (project / "databricks.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    point_bundle_at(project, url)
    commit_all(project)
    return project


def local_validate(project: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mlops_local", "--project-dir", str(project), "validate"],
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_unbroken_bundle_passes_both(rules_project, cli, tmp_path):
    project = broken_copy(rules_project, "", cli.fake.url, tmp_path / rules_project.name)
    for target in TARGETS:
        clean_output(cli.run(["bundle", "validate", "--strict", "-t", target], project, identity_of(target)))
    assert local_validate(project).returncode == 0, local_validate(project).stderr


@pytest.mark.parametrize("name", REAL_CLI_VERDICTS)
def test_offline_rules_agree_with_the_real_cli(rules_project, cli, tmp_path, name):
    from test_deploy_rules import BROKEN_BUNDLES

    rule, _, targets = BROKEN_BUNDLES[name]
    project = broken_copy(rules_project, name, cli.fake.url, tmp_path / rules_project.name)
    expected = REAL_CLI_VERDICTS[name]
    for target in sorted(targets):
        result = cli.run(["bundle", "validate", "--strict", "-t", target], project, identity_of(target), check=False)
        output = result.stdout + result.stderr
        if expected is None:
            assert result.returncode == 0, f"the real CLI refuses {name} in {target}: mirror it\n{output}"
        else:
            assert result.returncode != 0 and expected in output, f"{name} in {target}:\n{output}"
    # The offline check refuses it too, naming the rule; a rule the CLI enforces says it mirrors it.
    local = local_validate(project)
    assert local.returncode == 1 and f"[{rule}]" in local.stderr, local.stderr
    from test_deploy_rules import modules

    kind = modules(rules_project)[1].KINDS[rule]
    assert ("mirrors" in kind) if expected else ("policy" in kind or "server" in kind), (rule, kind)


RESOURCE_REFERENCE = re.compile(r"\$\{resources\.(\w+)\.(\w+)\.(\w+)\}")


def with_resource_references(resources: dict) -> dict:
    """`bundle validate` leaves ${resources...} for the deploy to fill in; fill in the names."""
    text = json.dumps(resources)

    def value(m: re.Match) -> str:
        kind, key, field = m.groups()
        return f"local:{key}" if field == "id" else resources[kind][key][field]  # mlops_local/bundle.py's job ids

    text = RESOURCE_REFERENCE.sub(value, text)
    return json.loads(text)


def comparable(resources: dict) -> dict:
    """What both the real CLI and mlops_local/bundle.py say about a target's resources."""
    jobs = {
        key: {
            "name": job["name"],
            "run_as": job.get("run_as"),
            "tags": job.get("tags"),
            "on_failure": (job.get("email_notifications") or {}).get("on_failure"),
            "parameters": {p["name"]: p["default"] for p in job.get("parameters", [])},
            "tasks": {
                t["task_key"]: (t.get("python_wheel_task") or {}).get("named_parameters") for t in job.get("tasks", [])
            },
        }
        for key, job in resources.get("jobs", {}).items()
    }
    models = {
        key: {
            "full_name": f"{m['catalog_name']}.{m['schema_name']}.{m['name']}",
            "grants": sorted((g["principal"], tuple(sorted(g["privileges"]))) for g in m.get("grants", [])),
        }
        for key, m in resources.get("registered_models", {}).items()
    }
    experiments = {key: e["name"] for key, e in resources.get("experiments", {}).items()}
    return {"jobs": jobs, "models": models, "experiments": experiments}


def test_local_resolver_agrees_with_the_real_cli(rules_project, cli, tmp_path):
    """mlops_local/bundle.py resolves every target as `bundle validate -o json` does, grants merged by principal."""
    from test_deploy_rules import modules

    bundle_module, _ = modules(rules_project)
    project = broken_copy(rules_project, "", cli.fake.url, tmp_path / rules_project.name)
    config = yaml.safe_load((project / "databricks.yml").read_text())
    staging_model = config["targets"]["staging"]["resources"]["registered_models"]["model"]
    reader = config["variables"]["uc_read_group"]["default"]  # the root's grant names it through the variable
    staging_model["grants"].append({"principal": reader, "privileges": ["APPLY_TAG", "EXECUTE"]})
    (project / "databricks.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for target in TARGETS:
        identity = identity_of(target)
        real = cli.json(["bundle", "validate", "-t", target], project, identity)
        variables = {"service_principal": FAKE_SERVICE_PRINCIPAL} if identity == SERVICE_PRINCIPAL else None
        local = bundle_module.resolve(config, target, variables, user="tester@databricks.com", project_dir=project)
        ours, theirs = comparable(local.resources), comparable(with_resource_references(real["resources"]))
        for kind in theirs:
            assert ours[kind].keys() == theirs[kind].keys(), (target, kind)
            for key in theirs[kind]:
                assert ours[kind][key] == theirs[kind][key], (target, kind, key)
        readers = [g for g in theirs["models"]["model"]["grants"] if g[0] == reader]
        assert readers == [(reader, ("APPLY_TAG", "EXECUTE") if target == "staging" else ("EXECUTE",))], target


# --- 4 and 5. The CI files as written -------------------------------------------------------

PRINCIPALS = tuple(DEFAULT_ANSWERS[f"{who}_service_principal"] for who in ("ci", "staging", "prod"))
# What a manual promotion run is given, per platform (inputs / parameters / variables).
MANUAL_INPUTS = {
    "github_actions": lambda dev_model: {"source_model": dev_model, "model_version": ""},
    "azure_devops": lambda dev_model: {"sourceModel": dev_model, "modelVersion": "champion"},
    "gitlab": lambda dev_model: {"source_model": dev_model, "promote_model": "yes"},
}


def ci_project(
    baked, cli, tmp_path, platform: str, pattern: str, checkout: str = "project", optional: bool = True
) -> tuple[Path, str]:
    """A checkout of a baked project for ``platform`` whose three principals are the fake's one, and HEAD.

    ``optional``: monitoring and the serving endpoint on (else both off)."""
    answers = {
        "project_slug": f"ci_{pattern}",
        "deployment_pattern": pattern,
        "cicd_platform": platform,
        "include_monitoring": optional,
        "include_serving_endpoint": optional,
    }
    project = pointed_at_fake(baked(**answers), cli.fake.url, tmp_path / checkout, principals=PRINCIPALS)
    cli.prepare(project)
    head = head_of(project)
    return project, head


def platform_env(project: Path, tmp_path: Path) -> dict[str, str]:
    """Files and values the platforms give every step (step outputs, PATH additions)."""
    files = {
        name: tmp_path / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
    }
    for path in files.values():
        path.touch()
    return {
        **{k: str(v) for k, v in files.items()},
        "GITHUB_API_URL": "https://api.github.invalid",
        "GITHUB_REPOSITORY": "example/project",
        "GITHUB_RUN_ID": "100",
        "MAX_AGE_DAYS": "7",
    }


def run_step(cli, project, step, extra: dict[str, str], **overrides: str) -> subprocess.CompletedProcess:
    from ci_jobs import fill_outputs, record_outputs

    outputs = extra.get("GITHUB_OUTPUT", "")
    env = {k: fill_outputs(v, outputs) for k, v in {**extra, **step.env, **overrides}.items()}
    result = cli.shell(step.shell, fill_outputs(step.script, outputs), project, SERVICE_PRINCIPAL, env)
    record_outputs(result.stdout, outputs)  # Azure DevOps output variables, for later stages
    return result


def run_job(cli, project, job, extra, **overrides: str) -> list[tuple[str, subprocess.CompletedProcess]]:
    """Every step of a job (each one, also after another failed), and the ones that failed."""
    results = [(step.name, run_step(cli, project, step, extra, **overrides)) for step in job.steps]
    return [(name, r) for name, r in results if r.returncode != 0]


def test_pull_request_copies_side_by_side_and_the_ci_teardown(baked, cli, tmp_path):
    """Two pull requests' copies of the test target; one trains and is torn down by the CI steps."""
    from ci_jobs import github_jobs

    # Each pull request's job runs in a checkout of its own (local bundle state is per target).
    checkouts, copies = {}, {}
    for pr in ("pr1", "pr2"):
        project, head = ci_project(baked, cli, tmp_path, "github_actions", "hybrid", checkout=pr)
        deployment = ["-t", "test", "--var", f"deployment_id={pr}"]
        cli.run(["bundle", "deploy", *deployment], project, SERVICE_PRINCIPAL)
        checkouts[pr], copies[pr] = project, cli.json(["bundle", "summary", *deployment], project, SERVICE_PRINCIPAL)
    project = checkouts["pr1"]
    cli.run(
        ["bundle", "run", "model_training_job", "-t", "test", "--var", "deployment_id=pr1"], project, SERVICE_PRINCIPAL
    )
    model = copies["pr1"]["resources"]["registered_models"]["model"]["id"]
    assert cli.json(["model-versions", "list", model], project, SERVICE_PRINCIPAL), "training registered no version"

    # The teardown steps of the pull request job, exactly as written (DEPLOYMENT_ID=pr1).
    job = next(j for j in github_jobs(project, {}, head) if j.name == "test-deployment")
    teardown = [s for s in job.steps if "bundle destroy" in s.script or "model-versions" in s.script]
    assert len(teardown) >= 2, [s.name for s in job.steps]
    env = platform_env(project, tmp_path)
    for step in teardown:
        result = run_step(cli, project, step, env, DEPLOYMENT_ID="pr1")
        assert result.returncode == 0, f"{step.name}\n{result.stdout}\n{result.stderr}"

    gone = copies["pr1"]
    for key, resource in gone["resources"]["jobs"].items():
        assert cli.run(["jobs", "get", resource["id"]], project, SERVICE_PRINCIPAL, check=False).returncode != 0, key
    assert cli.run(["registered-models", "get", model], project, SERVICE_PRINCIPAL, check=False).returncode != 0
    experiment = gone["resources"]["experiments"]["experiment"]["id"]
    assert (
        cli.run(["experiments", "get-experiment", experiment], project, SERVICE_PRINCIPAL, check=False).returncode != 0
    )
    root = gone["workspace"]["root_path"]
    assert cli.run(["workspace", "get-status", root], project, SERVICE_PRINCIPAL, check=False).returncode != 0
    # The other pull request's copy is untouched.
    kept = copies["pr2"]
    for resource in kept["resources"]["jobs"].values():
        cli.run(["jobs", "get", resource["id"]], project, SERVICE_PRINCIPAL)
    cli.run(
        ["registered-models", "get", kept["resources"]["registered_models"]["model"]["id"]], project, SERVICE_PRINCIPAL
    )
    cli.run(["workspace", "get-status", kept["workspace"]["root_path"]], project, SERVICE_PRINCIPAL)


PLATFORMS = ("github_actions", "azure_devops", "gitlab")
CI_CASES = [(platform, pattern, True) for pattern in PATTERNS for platform in PLATFORMS]
# Monitoring and the serving endpoint off: the CI files and jobs without them, through the real CLI too.
LEAN = {"github_actions": "hybrid", "azure_devops": "deploy_models", "gitlab": "deploy_code"}
CI_CASES += [(platform, pattern, False) for platform, pattern in LEAN.items()]


@pytest.mark.parametrize(
    ("platform", "pattern", "optional"), CI_CASES, ids=[f"{p}-{q}{'' if o else '-lean'}" for p, q, o in CI_CASES]
)
def test_ci_jobs_run_as_written(baked, cli, tmp_path, platform, pattern, optional):
    """Every CI job's `databricks` steps, in file order, as that job's identity: each exits 0.

    A job's check that a serving target has a champion fails until a training or promotion
    later in the sequence gives it one (the first deploy of a target); such a job is run again
    once the sequence is through, and must then pass.
    """
    from ci_jobs import PLATFORM_JOBS

    project, head = ci_project(baked, cli, tmp_path, platform, pattern, optional=optional)
    # A developer's trained dev model: what a promotion from dev copies.
    cli.run(["bundle", "deploy", "-t", "dev"], project, USER)
    cli.run(["bundle", "run", "model_training_job", "-t", "dev"], project, USER)
    dev_model = cli.json(["bundle", "summary", "-t", "dev"], project, USER)["resources"]["registered_models"]["model"]
    # A test copy that an earlier pipeline (its own checkout) left behind, trained: the sweeper
    # must remove it.
    earlier, _ = ci_project(baked, cli, tmp_path, platform, pattern, checkout="earlier", optional=optional)
    leftover = ["-t", "test", "--var", "deployment_id=old1"]
    cli.run(["bundle", "deploy", *leftover], earlier, SERVICE_PRINCIPAL)
    if pattern != "deploy_models":  # the only test target that trains
        cli.run(["bundle", "run", "model_training_job", *leftover], earlier, SERVICE_PRINCIPAL)
    left = cli.json(["bundle", "summary", *leftover], earlier, SERVICE_PRINCIPAL)
    jobs = PLATFORM_JOBS[platform](project, MANUAL_INPUTS[platform](dev_model["id"]), head)
    assert jobs, "no CI job runs the Databricks CLI"
    env = platform_env(project, tmp_path)

    waiting = []
    for job in jobs:
        failures = run_job(cli, project, job, env, MAX_AGE_DAYS="0")  # the sweeper removes every copy
        if failures and all("champion" in r.stdout + r.stderr for _, r in failures):
            waiting.append(job)
            continue
        assert not failures, f"{job}: " + "\n".join(f"{n}\n{r.stdout}\n{r.stderr}" for n, r in failures)
    for job in waiting:
        failures = run_job(cli, project, job, env, MAX_AGE_DAYS="0")
        assert not failures, f"{job} (again): " + "\n".join(f"{n}\n{r.stdout}\n{r.stderr}" for n, r in failures)
    # Nothing of any test copy remains: the pull request's own, and the leftover the sweeper removed.
    model = left["resources"]["registered_models"]["model"]["id"]
    assert cli.run(["registered-models", "get", model], project, SERVICE_PRINCIPAL, check=False).returncode != 0
    copies = cli.json(
        ["workspace", "list", left["workspace"]["root_path"].rsplit("/", 1)[0]], project, SERVICE_PRINCIPAL
    )
    assert [c["path"] for c in copies or [] if c.get("object_type") == "DIRECTORY"] == []


def test_the_sweeper_keeps_a_young_copy_and_removes_it_once_old(baked, cli, tmp_path):
    """The sweep job as written: a copy younger than MAX_AGE_DAYS stays, trained or not; at age 0 it goes."""
    from ci_jobs import github_jobs

    project, head = ci_project(baked, cli, tmp_path, "github_actions", "hybrid")
    young = ["-t", "test", "--var", "deployment_id=young1"]
    cli.run(["bundle", "deploy", *young], project, SERVICE_PRINCIPAL)
    cli.run(["bundle", "run", "model_training_job", *young], project, SERVICE_PRINCIPAL)
    summary = cli.json(["bundle", "summary", *young], project, SERVICE_PRINCIPAL)
    model = summary["resources"]["registered_models"]["model"]["id"]
    assert cli.json(["model-versions", "list", model], project, SERVICE_PRINCIPAL), "training left no version"
    sweep = next(j for j in github_jobs(project, {}, head) if "sweep" in j.name)
    env = platform_env(project, tmp_path)

    failures = run_job(cli, project, sweep, env, MAX_AGE_DAYS="7")
    assert not failures, "\n".join(f"{n}\n{r.stdout}\n{r.stderr}" for n, r in failures)
    cli.run(["registered-models", "get", model], project, SERVICE_PRINCIPAL)  # kept
    cli.run(["workspace", "get-status", summary["workspace"]["root_path"]], project, SERVICE_PRINCIPAL)

    failures = run_job(cli, project, sweep, env, MAX_AGE_DAYS="0")
    assert not failures, "\n".join(f"{n}\n{r.stdout}\n{r.stderr}" for n, r in failures)
    assert cli.run(["registered-models", "get", model], project, SERVICE_PRINCIPAL, check=False).returncode != 0
    root = summary["workspace"]["root_path"]
    assert cli.run(["workspace", "get-status", root], project, SERVICE_PRINCIPAL, check=False).returncode != 0
