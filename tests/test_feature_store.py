"""include_feature_store: feature tables in Unity Catalog, in every pattern.

Checks the bundle of a bake with the option on for each deployment pattern (every target whose
jobs read features computes them first, in its own catalog; the feature pipeline job exists in
every target), and runs each generated suite, whose tests/test_features.py pins down the
feature-engineering semantics (point-in-time lookups, idempotent merges, keys-only scoring, a
promoted model scoring from the destination catalog's tables) and whose scenario shows, per
target, the feature tables it wrote and read.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET

import pytest
from bake import project_env

import template_rules

PATTERNS = ("deploy_code", "deploy_models", "hybrid")
# Per job, the task that reads features: it must depend on the `features` task.
READERS = {"model_training_job": "train", "batch_inference_job": "batch_inference", "model_promotion_job": "copy_model"}


def test_the_option_is_a_checked_boolean():
    from helpers import default_answers

    answers = {**default_answers(), "include_feature_store": "sometimes"}
    assert any("include_feature_store" in problem for problem in template_rules.problems(answers))
    assert not any(
        "include_feature_store" in p for p in template_rules.problems({**answers, "include_feature_store": True})
    )


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_target_computes_its_features_before_reading_them(baked, pattern, monkeypatch):
    project = baked(deployment_pattern=pattern, include_feature_store=True, project_slug="fs_bundle")
    monkeypatch.syspath_prepend(str(project / "src"))
    module = importlib.import_module("mlops_local.bundle")
    config = module.load_bundle(project)
    for target in ("dev", "test", "staging", "prod"):
        bundle = module.resolve(config, target, user="alice@example.com")
        catalog = bundle.variables["catalog"]
        pipeline = bundle.jobs["feature_engineering_job"]
        assert [t["task_key"] for t in pipeline["tasks"]] == ["features"], target
        # One trigger (feature_trigger): daily by default, paused where development mode or the
        # presets pause schedules (dev, test), as the CLI's ApplyPresets pauses job triggers.
        assert "schedule" not in pipeline and pipeline["trigger"]["periodic"] == {"interval": 1, "unit": "DAYS"}
        assert (pipeline["trigger"].get("pause_status") == "PAUSED") == (target in ("dev", "test")), target
        for job_key, reader in READERS.items():
            if job_key not in bundle.jobs:
                continue
            tasks = {t["task_key"]: t for t in bundle.jobs[job_key]["tasks"]}
            features = tasks["features"]["python_wheel_task"]
            assert features["entry_point"] == "features"
            assert features["named_parameters"]["catalog"] == catalog, (target, job_key)
            assert {"task_key": "features"} in tasks[reader]["depends_on"], (target, job_key)
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert scripts["scripts"]["features"].endswith(".feature_store:main")
    assert any(d.startswith("databricks-feature-engineering") for d in scripts["dependencies"])


# The jobs whose `features` task publishes the tables to the online store when an endpoint serves the
# model: the serve task follows it in training and promotion; the feature job keeps the store in sync.
PUBLISHERS = {"feature_engineering_job", "model_training_job", "model_promotion_job"}


@pytest.mark.parametrize("serving", [False, True])
def test_the_features_are_published_where_an_endpoint_looks_them_up(baked, serving, monkeypatch):
    answers = {"deployment_pattern": "hybrid", "include_feature_store": True, "include_serving_endpoint": serving}
    project = baked(project_slug="fs_online", **answers)
    monkeypatch.syspath_prepend(str(project / "src"))
    module = importlib.import_module("mlops_local.bundle")
    config = module.load_bundle(project)
    for target in ("dev", "test", "staging", "prod"):
        bundle = module.resolve(config, target, user="alice@example.com")
        for job_key, job in bundle.jobs.items():
            for task in job["tasks"]:
                if task["task_key"] != "features":
                    continue
                named = task["python_wheel_task"]["named_parameters"]
                publishes = serving and job_key in PUBLISHERS
                assert named.get("online_store") == ("fs-online-features" if publishes else None), (target, job_key)
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    client = [d for d in dependencies if d.startswith("databricks-feature-engineering")]
    # create_online_store and publish_table(source_table_name=...) arrived in 0.13.0.
    assert client == [f"databricks-feature-engineering>={'0.13.0' if serving else '0.12.1'},<0.19"]


def test_the_option_off_leaves_no_feature_engineering_behind(baked):
    project = baked(project_slug="fs_off")
    text = "\n".join(
        p.read_text() for p in sorted(project.rglob("*")) if p.is_file() and p.suffix in {".py", ".yml", ".toml"}
    )
    for word in ("feature_engineering", "feature_store", "FEATURE_TABLES", "FeatureLookup"):
        assert word not in text, word


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_generated_suite_passes_with_feature_tables(baked, pattern, tmp_path):
    serving = pattern == "hybrid"  # one pattern with the endpoint: the online store and keys-only requests
    project = baked(deployment_pattern=pattern, include_feature_store=True, include_serving_endpoint=serving)
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    ran = {(case.get("classname"), case.get("name")) for case in cases if not list(case)}
    names = [
        "test_a_feature_written_after_a_labels_timestamp_is_never_joined_to_it",
        "test_a_rerun_of_a_window_changes_nothing",
        "test_scoring_with_keys_only_equals_scoring_with_the_joined_features",
    ]
    if pattern != "deploy_code":  # where promotion exists
        names.append("test_a_promoted_model_scores_from_the_destination_catalogs_tables")
    if serving:
        names += [
            "test_publishing_copies_the_latest_row_of_each_key_and_follows_the_merges",
            "test_publishing_needs_change_data_feed",
            "test_a_request_with_the_lookup_keys_only_is_scored_from_the_online_store",
        ]
    for name in names:
        assert ("tests.test_features", name) in ran, name
    assert ("tests.test_scenario", "test_scenario_gives_prod_a_champion_with_lineage") in ran
    assert ("tests.test_scenario", "test_the_scenario_shows_each_targets_feature_tables") in ran
