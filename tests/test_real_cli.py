"""The real Databricks CLI on baked projects, against the CLI's own fake workspace.

The CLI is the version the template pins (clitest/go.mod), built from the Go module proxy by
tools/clitest.py; the fake workspace is github.com/databricks/cli/libs/testserver, served by
clitest/. What the fake can and cannot tell is listed in docs/decisions.md.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml
from matrix import combinations
from realcli import SERVICE_PRINCIPAL, identity_of, pointed_at_fake

from clitest import FAKE_SERVICE_PRINCIPAL

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
    """A baked project, copied to point at the fake and committed to git (as CI has it)."""
    return pointed_at_fake(baked(**answers), cli.fake.url, tmp_path / "project")


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


# --- 2. deploy every target, then read back what the workspace holds -----------------------


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
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    defaults = baked(**answers)
    variables = yaml.safe_load((project / "databricks.yml").read_text())["variables"]
    read_group, uc_read_group = variables["read_group"]["default"], variables["uc_read_group"]["default"]
    for target in TARGETS:
        identity = identity_of(target)
        cli.run(["bundle", "deploy", "-t", target], project, identity)
        jobs, summary = deployed_jobs(cli, project, target, identity)
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
                assert job["run_as"] == {"service_principal_name": FAKE_SERVICE_PRINCIPAL}, (target, key)
                assert job["email_notifications"]["on_failure"] == [EMAILS], (target, key)
                assert "CAN_VIEW" in levels[read_group], levels
                assert levels[FAKE_SERVICE_PRINCIPAL] & {"CAN_MANAGE", "IS_OWNER"}, levels
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
        promotes_from = {("deploy_models", "dev"), ("deploy_models", "staging"), ("hybrid", "staging")}
        if (pattern, target) in promotes_from:
            assert len(granted) == 2 and all(p == {"EXECUTE"} for p in granted.values()), granted
        else:
            assert set(granted) == {uc_read_group}, granted
    assert defaults.exists()


# --- 3. prevent_destroy: moving the staging or prod model is refused ------------------------


@pytest.mark.parametrize("target", ["staging", "prod"])
@pytest.mark.parametrize("move", ["catalog", "schema"])
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
