"""Every option changes something real in the output: each is baked with a telling value."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
import yaml


def bundle(project):
    return yaml.safe_load((project / "databricks.yml").read_text())


def dig(data, *keys):
    for key in keys:
        data = data[key]
    return data


CASES = [
    ("project_name", "Fare Forecasting", lambda p: (p / "README.md").read_text().startswith("# Fare Forecasting")),
    (
        "dev_workspace_host",
        "https://dev.cloud.databricks.com/",
        lambda p: dig(bundle(p), "targets", "dev", "workspace", "host") == "https://dev.cloud.databricks.com",
    ),
    (
        "staging_workspace_host",
        "https://stg.cloud.databricks.com",
        lambda p: (
            {dig(bundle(p), "targets", t, "workspace", "host") for t in ("test", "staging")}
            == {"https://stg.cloud.databricks.com"}
        ),
    ),
    (
        "prod_workspace_host",
        "https://prd.cloud.databricks.com",
        lambda p: dig(bundle(p), "targets", "prod", "workspace", "host") == "https://prd.cloud.databricks.com",
    ),
    ("dev_catalog", "ml_dev", lambda p: dig(bundle(p), "targets", "dev", "variables", "catalog") == "ml_dev"),
    ("test_catalog", "ml_ci", lambda p: dig(bundle(p), "targets", "test", "variables", "catalog") == "ml_ci"),
    ("staging_catalog", "ml_stg", lambda p: dig(bundle(p), "targets", "staging", "variables", "catalog") == "ml_stg"),
    ("prod_catalog", "ml_prd", lambda p: dig(bundle(p), "targets", "prod", "variables", "catalog") == "ml_prd"),
    ("schema_name", "fares", lambda p: dig(bundle(p), "variables", "schema", "default") == "fares"),
    (
        "model_name",
        "fare_regressor",
        lambda p: dig(bundle(p), "variables", "model_name", "default") == "fare_regressor",
    ),
    (
        "ci_service_principal",
        "11111111-2222-3333-4444-555555555555",
        lambda p: (
            dig(bundle(p), "targets", "test", "variables", "service_principal")
            == "11111111-2222-3333-4444-555555555555"
        ),
    ),
    (
        "staging_service_principal",
        "11111111-2222-3333-4444-555555555555",
        lambda p: (
            dig(bundle(p), "targets", "staging", "variables", "service_principal")
            == "11111111-2222-3333-4444-555555555555"
        ),
    ),
    (
        "ci_service_principal",
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        lambda p: (
            yaml.safe_load((p / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["test-deployment"]["env"][
                "DATABRICKS_CLIENT_ID"
            ]
            == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        ),
    ),
    (
        "prod_service_principal",
        "66666666-7777-8888-9999-000000000000",
        lambda p: (
            dig(bundle(p), "targets", "prod", "variables", "service_principal")
            == "66666666-7777-8888-9999-000000000000"
        ),
    ),
    ("uc_read_group", "ml readers", lambda p: dig(bundle(p), "variables", "uc_read_group", "default") == "ml readers"),
    (
        "notification_emails",
        "a@example.com, b@example.org",
        lambda p: dig(bundle(p), "variables", "notification_emails", "default") == ["a@example.com", "b@example.org"],
    ),
    ("read_group", "ml-readers", lambda p: dig(bundle(p), "variables", "read_group", "default") == "ml-readers"),
    (
        "default_branch",
        "trunk",
        lambda p: (
            "trunk" in yaml.safe_load((p / ".github" / "workflows" / "cd.yml").read_text())[True]["push"]["branches"]
        ),
    ),
    (
        "release_branch",
        "production",
        lambda p: (
            "production"
            in yaml.safe_load((p / ".github" / "workflows" / "cd.yml").read_text())[True]["push"]["branches"]
        ),
    ),
    (
        "description",
        "Fare model.",
        lambda p: tomllib.loads((p / "pyproject.toml").read_text())["project"]["description"] == "Fare model.",
    ),
]


@pytest.mark.parametrize(("key", "value", "check"), CASES, ids=[case[0] for case in CASES])
def test_option_reaches_the_output(baked, key, value, check):
    assert check(baked(**{key: value}))


def test_project_slug_names_package_bundle_and_folder(baked):
    project = baked(project_slug="fare_service")
    assert project.name == "fare_service"
    assert (project / "src" / "fare_service" / "train.py").is_file()
    assert bundle(project)["bundle"]["name"] == "fare_service"
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"] == "fare_service"


def test_project_slug_defaults_to_the_slugified_name(baked):
    assert baked(project_name="Taxi Fares 2").name == "taxi_fares_2"


def test_service_principals_reach_jobs_roots_and_grants(baked):
    """Each principal: run_as of every job in its target, its root path, its promotion grant."""
    import importlib
    import sys

    project = baked(project_slug="sp_check", deployment_pattern="deploy_models", notification_emails="a@example.com")
    sys.path.insert(0, str(project / "src"))
    module = importlib.import_module("mlops_local.bundle")
    config = module.load_bundle(project)
    principals = {"test": "00000000-0000-0000-0000-000000000003", "staging": "00000000-0000-0000-0000-000000000001"}
    principals["prod"] = "00000000-0000-0000-0000-000000000002"
    for target, principal in principals.items():
        resolved = module.resolve(config, target, user="ci@example.com")
        assert resolved.workspace["root_path"].startswith(f"/Workspace/Users/{principal}/.bundle/sp_check/{target}")
        for job in resolved.jobs.values():
            assert job["run_as"] == {"service_principal_name": principal}
            assert job["email_notifications"] == {"on_failure": ["a@example.com"]}
    grants = {
        target: [
            g["principal"] for g in module.resolve(config, target).resources["registered_models"]["model"]["grants"]
        ]
        for target in ("dev", "staging", "prod")
    }
    readers = "sp_check_model_readers"  # the default uc_read_group: <project_slug>_model_readers
    assert grants == {
        # the staging principal copies dev versions; the CI principal reads the one it checks
        "dev": [readers, principals["staging"], principals["test"]],
        "staging": [readers, principals["prod"]],
        "prod": [readers],
    }
    dev = module.resolve(config, "dev", user="alice@example.com")
    assert all("run_as" not in job and "email_notifications" not in job for job in dev.jobs.values())


# Per option: the generated files and [project.scripts] entry points that exist only with it.
OPTION_CODE = {
    "include_feature_store": (
        (
            "src/{pkg}/features.py",
            "src/{pkg}/feature_store.py",
            "src/mlops_local/feature_engineering.py",
            "tests/test_features.py",
            "resources/feature_engineering_job.yml",
        ),
        ("features",),
    ),
    "include_serving_endpoint": (
        ("src/{pkg}/serving.py", "src/mlops_local/scoring_server.py", "tests/test_serving.py"),
        ("serve", "remove_endpoint"),
    ),
    "include_monitoring": (
        (
            "src/{pkg}/monitoring.py",
            "src/{pkg}/quality_monitor.py",
            "tests/test_monitoring.py",
            "tests/test_quality_monitor.py",
        ),
        ("monitor", "retraining_needed", "quality_monitor", "remove_quality_monitor"),
    ),
}


@pytest.mark.parametrize("option", sorted(OPTION_CODE))
@pytest.mark.parametrize("value", [True, False])
def test_an_option_left_out_leaves_out_its_code(baked, option, value):
    """Without an option, its modules, tests and entry points are not generated; with it, they are."""
    other = next(key for key in OPTION_CODE if key != option)
    # hybrid: a pattern with promotion, whose monitoring also asks for retraining in prod.
    project = baked(project_slug="opt_code", deployment_pattern="hybrid", **{option: value, other: not value})
    paths, entry_points = OPTION_CODE[option]
    present = {path for path in paths if (project / path.format(pkg="opt_code")).exists()}
    assert present == (set(paths) if value else set()), f"{option}={value}"
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(entry_points) & set(scripts) == (set(entry_points) if value else set()), f"{option}={value}"
    if not value:
        # Nothing imports what was left out when it loads; the scenario's one import of the
        # scoring server is inside the branch taken only when the bundle has a `serve` task.
        gone = {Path(path).stem for path in paths if path.startswith("src/")}
        for module in sorted((project / "src").rglob("*.py")) + sorted((project / "tests").rglob("*.py")):
            imported = set()
            for node in ast.parse(module.read_text()).body:
                if isinstance(node, ast.ImportFrom):
                    imported |= set((node.module or "").split(".")) | {alias.name for alias in node.names}
                elif isinstance(node, ast.Import):
                    imported |= {part for alias in node.names for part in alias.name.split(".")}
            assert not imported & gone, f"{module.relative_to(project)} imports {sorted(imported & gone)}"
    for entry_point in scripts.values():
        assert (project / "src" / (entry_point.split(":")[0].replace(".", "/") + ".py")).is_file(), entry_point
