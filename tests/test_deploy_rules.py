"""The Databricks CLI's deploy-time rules, checked offline (the generated ``mlops_local/rules.py``).

Over the option matrix, with every optional resource included, no target breaks a rule:
offline, that is what ``databricks bundle validate --strict`` being clean means. Each rule
is then fed a bundle in the shape the template had before the rule existed, and must
report it. Each rule names the CLI v1.12.1 file it mirrors, or says it is the template's policy;
test_real_cli.py gives the same broken bundles to the real CLI.
"""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

import pytest
from bake import bake
from matrix import combinations

COMBINATIONS = [
    {**combo, "notification_emails": "ml-team@example.com" if i % 2 else ""} for i, combo in enumerate(combinations())
]
IDS = ["-".join(str(v) for k, v in combo.items() if k not in ("project_slug",)) for combo in COMBINATIONS]
TARGETS = ("dev", "test", "staging", "prod")
STAGING_SP = "00000000-0000-0000-0000-000000000001"
PROD_SP = "00000000-0000-0000-0000-000000000002"
# The old resources/after_first_run/ shapes: a monitor and an endpoint (with a read_group permission).
MONITOR_AND_ENDPOINT = {
    "quality_monitors": {
        "inference_monitor": {
            "table_name": "${var.catalog}.${var.schema}.predictions",
            "output_schema_name": "${var.catalog}.${var.schema}",
            "assets_dir": "${workspace.root_path}/monitoring",
            "inference_log": {
                "problem_type": "PROBLEM_TYPE_REGRESSION",
                "granularities": ["1 day"],
                "model_id_col": "model_version",
                "prediction_col": "prediction",
                "timestamp_col": "scored_at",
            },
        }
    },
    "model_serving_endpoints": {
        "serving_endpoint": {
            "name": "${bundle.name}-${bundle.target}",
            "config": {"served_entities": [{"entity_name": "m", "entity_version": "1", "workload_size": "Small"}]},
            "permissions": [{"group_name": "${var.read_group}", "level": "CAN_QUERY"}],
        }
    },
}


@pytest.fixture(scope="session")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    projects = []
    for answers in COMBINATIONS:
        slug = answers["project_slug"].replace("proj_", "rules_")
        projects.append(bake(root / slug, **{**answers, "project_slug": slug}))
    return projects


def modules(project: Path):
    if str(project / "src") not in sys.path:
        sys.path.insert(0, str(project / "src"))
    bundle = importlib.import_module("mlops_local.bundle")
    rules = importlib.import_module("mlops_local.rules")
    return bundle, rules


def resolve_all(bundle_module, config: dict, **variables) -> dict:
    return {
        target: bundle_module.resolve(config, target, variables or None, user="alice@example.com") for target in TARGETS
    }


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=IDS)
def test_no_target_breaks_a_rule(matrix, index):
    project = matrix[index]
    bundle_module, rules = modules(project)
    config = bundle_module.load_bundle(project)
    findings = rules.check(resolve_all(bundle_module, config, deployment_id="pr-7-1"))
    assert findings == [], "\n".join(map(str, findings))


# --- One broken bundle per rule --------------------------------------------------------


def hybrid_answers() -> dict:
    return {
        "project_slug": "rules_hybrid",
        "deployment_pattern": "hybrid",
        "include_monitoring": True,
        "include_serving_endpoint": False,
        "notification_emails": "ml-team@example.com",
    }


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """hybrid (the pattern with training, promotion and approval), monitoring, e-mails.

    Broken bundles add what they need (a monitor, an endpoint) themselves, so the rules keep
    covering resource types the template no longer defines.
    """
    project = bake(tmp_path_factory.mktemp("broken") / "rules_hybrid", **hybrid_answers())
    bundle_module, rules = modules(project)
    return project, bundle_module, rules


def findings_of(hybrid, rule: str, break_it) -> list:
    project, bundle_module, rules = hybrid
    config = copy.deepcopy(bundle_module.load_bundle(project))
    before = [f for f in rules.check(resolve_all(bundle_module, config)) if f.rule == rule]
    assert before == [], before
    break_it(config)
    return [f for f in rules.check(resolve_all(bundle_module, config)) if f.rule == rule]


# Each broken bundle: the template's shape before a rule existed. test_real_cli.py gives the
# same bundles to the real CLI: a rule that mirrors the CLI must see what the CLI refuses.


def grant_to_workspace_group(config):
    """The old `principal: ${var.read_group}`, with read_group users (the old default)."""
    config["resources"]["registered_models"]["model"]["grants"] = [
        {"principal": "${var.read_group}", "privileges": ["EXECUTE"]}
    ]
    config["variables"]["read_group"]["default"] = "users"


def grant_without_privileges(config):
    config["resources"]["registered_models"]["model"]["grants"].append({"principal": "ml-readers", "privileges": []})


def target_run_as_with_monitor_and_endpoint(config):
    """The old target-level run_as, with the optional resources on."""
    config["targets"]["prod"]["run_as"] = {"service_principal_name": PROD_SP}
    config["targets"]["prod"]["resources"].update(copy.deepcopy(MONITOR_AND_ENDPOINT))


def job_without_run_as(config):
    del config["targets"]["prod"]["resources"]["jobs"]["batch_inference_job"]["run_as"]


def promotion_grant_by_hand(config):
    """The prod principal's EXECUTE on the staging model, granted by hand."""
    del config["targets"]["staging"]["resources"]["registered_models"]["model"]["grants"]


def no_read_group_grant(config):
    config["resources"]["registered_models"]["model"]["grants"] = []


def no_prevent_destroy(config):
    """The old staging/prod model and experiment without lifecycle."""
    for target in ("staging", "prod"):
        for kind in ("registered_models", "experiments"):
            for resource in config["targets"][target]["resources"][kind].values():
                resource.pop("lifecycle", None)


def roots_under_shared(config):
    """The old /Workspace/Shared/.bundle roots."""
    for target in ("test", "staging", "prod"):
        config["targets"][target]["workspace"] = {
            **config["targets"][target]["workspace"],
            "root_path": "/Workspace/Shared/.bundle/${bundle.name}/${bundle.target}",
        }


def production_without_root_path(config):
    config["targets"]["prod"]["workspace"] = {"host": config["targets"]["prod"]["workspace"]["host"]}


def experiment_under_shared(config):
    """The old experiment name /Workspace/Shared/<bundle>/<target>/<model>."""
    config["variables"]["experiment_name"]["default"] = "/Workspace/Shared/${bundle.name}/${bundle.target}/m"


def experiment_in_a_subfolder(config):
    config["variables"]["experiment_name"]["default"] = "${workspace.root_path}/experiments/m"


def experiment_permission_overlap(config):
    """The old experiment permission for read_group."""
    config["resources"]["experiments"]["experiment"]["permissions"] = [
        {"group_name": "${var.read_group}", "level": "CAN_READ"}
    ]


def endpoint_permission_overlap(config):
    config["targets"]["prod"]["resources"].update(copy.deepcopy(MONITOR_AND_ENDPOINT))


def job_without_failure_emails(config):
    config["resources"]["jobs"]["batch_inference_job"]["email_notifications"] = {}
    for target in ("test", "staging", "prod"):
        config["targets"][target]["resources"]["jobs"]["batch_inference_job"].pop("email_notifications", None)


def wheel_without_dynamic_version(config):
    del config["artifacts"]["python_artifact"]["dynamic_version"]


def jobs_without_tags(config):
    del config["presets"]["tags"]


def training_without_commit(config):
    train = config["targets"]["dev"]["resources"]["jobs"]["model_training_job"]["tasks"][0]
    del train["python_wheel_task"]["named_parameters"]["git_commit"]


# name -> (rule, how to break the bundle, the targets the rule must name)
BROKEN_BUNDLES = {
    "grant_to_workspace_group": ("uc-grant-principal", grant_to_workspace_group, set(TARGETS)),
    "grant_without_privileges": ("uc-grant-principal", grant_without_privileges, set(TARGETS)),
    "target_run_as_with_monitor_and_endpoint": ("run-as", target_run_as_with_monitor_and_endpoint, {"prod"}),
    "job_without_run_as": ("run-as", job_without_run_as, {"prod"}),
    "promotion_grant_by_hand": ("grants", promotion_grant_by_hand, {"prod"}),
    "no_read_group_grant": ("grants", no_read_group_grant, set(TARGETS)),
    "no_prevent_destroy": ("prevent-destroy", no_prevent_destroy, {"staging", "prod"}),
    "roots_under_shared": ("root-path", roots_under_shared, {"test", "staging", "prod"}),
    "production_without_root_path": ("root-path", production_without_root_path, {"prod"}),
    "experiment_under_shared": ("experiment-path", experiment_under_shared, set(TARGETS)),
    "experiment_in_a_subfolder": ("experiment-path", experiment_in_a_subfolder, set(TARGETS)),
    "experiment_permission_overlap": ("permission-overlap", experiment_permission_overlap, {"test", "staging", "prod"}),
    "endpoint_permission_overlap": ("permission-overlap", endpoint_permission_overlap, {"prod"}),
    "job_without_failure_emails": ("failure-notifications", job_without_failure_emails, {"test", "staging", "prod"}),
    "wheel_without_dynamic_version": ("dynamic-version", wheel_without_dynamic_version, set(TARGETS)),
    "jobs_without_tags": ("traceability", jobs_without_tags, set(TARGETS)),
    "training_without_commit": ("traceability", training_without_commit, {"dev"}),
}


@pytest.mark.parametrize("name", BROKEN_BUNDLES)
def test_each_rule_reports_its_broken_bundle(hybrid, name):
    rule, break_it, targets = BROKEN_BUNDLES[name]
    assert {f.target for f in findings_of(hybrid, rule, break_it)} == targets


def test_uc_grant_messages(hybrid):
    found = findings_of(hybrid, "uc-grant-principal", grant_to_workspace_group)
    assert "'users'" in found[0].message
    found = findings_of(hybrid, "uc-grant-principal", grant_without_privileges)
    assert "no privileges" in found[0].message


def test_run_as_messages(hybrid):
    found = findings_of(hybrid, "run-as", target_run_as_with_monitor_and_endpoint)
    assert any("quality_monitors" in f.message for f in found)
    assert any("model_serving_endpoints" in f.message for f in found)
    found = findings_of(hybrid, "run-as", job_without_run_as)
    assert found and all("batch_inference_job has no run_as" in f.message for f in found)


def test_grant_messages(hybrid):
    found = findings_of(hybrid, "grants", promotion_grant_by_hand)
    assert len(found) == 1 and PROD_SP in found[0].message


def test_prevent_destroy_names_each_resource(hybrid):
    assert len(findings_of(hybrid, "prevent-destroy", no_prevent_destroy)) == 4


def test_root_path_messages(hybrid):
    assert any(
        "writable by every workspace user" in f.message for f in findings_of(hybrid, "root-path", roots_under_shared)
    )
    found = findings_of(hybrid, "root-path", production_without_root_path)
    assert any("without the target's own workspace.root_path" in f.message for f in found)


def test_overlap_and_notification_messages(hybrid):
    found = findings_of(hybrid, "permission-overlap", endpoint_permission_overlap)
    assert len(found) == 1 and "model_serving_endpoints" in found[0].message
    found = findings_of(hybrid, "failure-notifications", job_without_failure_emails)
    assert all("batch_inference_job" in f.message for f in found)
    assert any("git_commit" in f.message for f in findings_of(hybrid, "traceability", training_without_commit))


# --- The test target: one isolated copy per deployment id ------------------------------


def test_deployment_ids_do_not_collide(hybrid):
    project, bundle_module, _ = hybrid
    config = bundle_module.load_bundle(project)
    first, second = (
        bundle_module.resolve(config, "test", {"deployment_id": value}, user="ci@example.com")
        for value in ("pr-12-1", "pr-13-1")
    )
    assert first.workspace["root_path"].endswith("/test/pr-12-1")
    assert first.workspace["root_path"].startswith("/Workspace/Users/00000000-0000-0000-0000-000000000003/.bundle/")
    assert first.resources["registered_models"]["model"]["name"].startswith("test_pr_12_1_")
    for kind in ("jobs", "experiments", "registered_models"):
        for key in first.resources[kind]:
            assert first.resources[kind][key]["name"] != second.resources[kind][key]["name"], (kind, key)
    assert all(
        job["run_as"] == {"service_principal_name": "00000000-0000-0000-0000-000000000003"}
        for job in first.jobs.values()
    )
    assert "lifecycle" not in first.resources["registered_models"]["model"]  # CI destroys each copy


def test_uc_prefix_normalizes_like_the_cli(hybrid):
    """apply_presets.go normalizePrefix + textutil.NormalizeString."""
    _, bundle_module, _ = hybrid
    assert bundle_module.uc_prefix("[dev alice] ") == "dev_alice_"
    assert bundle_module.uc_prefix("[test pr-12--3] ") == "test_pr_12_3_"
    assert bundle_module.uc_prefix("team ") == "team"


def test_git_commit_resolves_to_head(hybrid, tmp_path):
    project, bundle_module, _ = hybrid
    assert bundle_module.git_commit(tmp_path) == ""
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "-c",
            "user.email=a@b.c",
            "-c",
            "user.name=a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    config = bundle_module.load_bundle(project)
    prod = bundle_module.resolve(config, "prod", project_dir=tmp_path)
    assert {p["name"]: p["default"] for p in prod.jobs["model_promotion_job"]["parameters"]}["git_commit"] == head


def test_local_validate_reports_a_broken_bundle(hybrid, capsys):
    """`python -m mlops_local validate` fails, naming the rule, when a team breaks one."""
    project, bundle_module, _ = hybrid
    main = importlib.import_module("mlops_local.__main__").main
    assert main(["--project-dir", str(project), "validate"]) == 0
    artifacts = project / "databricks.yml"
    original = artifacts.read_text()
    try:
        artifacts.write_text(original.replace("    dynamic_version: true\n", ""))
        assert main(["--project-dir", str(project), "validate"]) == 1
        assert "[dynamic-version]" in capsys.readouterr().err
    finally:
        artifacts.write_text(original)
