"""The whole path to production, run locally exactly as the bundle defines the jobs."""

import re
import shutil
from pathlib import Path

from conftest import PROJECT_DIR
from helpers import drifted_table
from mlflow.tracking import MlflowClient
from mlops_local.bundle import load_bundle, resolve
from mlops_local.environment import table_path
from mlops_local.runner import LocalRunner
from mlops_local.scenario import (
    promotion_source,
    resolve_all,
    serve_task_parameters,
    summary,
)

from {{ cookiecutter.project_slug }}.names import ModelRef
from {{ cookiecutter.project_slug }}.runtime import get_spark


def test_scenario_gives_prod_a_champion_with_lineage(scenario, local_state):
    runs, lines = scenario
    assert {run.job_key for run in runs} >= {"batch_inference_job"}

    config = load_bundle(PROJECT_DIR)
    client = MlflowClient()
    prod = resolve(config, "prod")
    champion = client.get_model_version_by_alias(prod.model_full_name(), "champion")
    if "model_training_job" in prod.jobs:
        assert champion.tags["trained_in"] == prod.variables["catalog"]
    else:
        source = champion.tags["source_model_version"]
        assert source.startswith(f"models:/{prod.variables['promotion_source_catalog']}.")
    # Provenance: the target and job run that made the version (and git_commit, in a repository).
    assert champion.tags["target"] == "prod" and champion.tags["job_run_id"]
    if "model_training_job" in prod.jobs:
        assert client.get_run(champion.run_id).data.tags["job_run_id"] == champion.tags["job_run_id"]
    serve = serve_task_parameters(prod)
    if serve is not None:  # serving included: prod's endpoint serves its champion, smoke-tested
        from mlops_local.scoring_server import served_version
        from mlops_local.workspace import local_endpoint

        assert served_version(local_endpoint(local_state, serve["endpoint_name"])) == str(champion.version)
        assert any("a malformed request got HTTP 4" in line for line in lines), lines[-5:]
    report = summary(PROJECT_DIR, local_state)
    assert f"{prod.model_full_name()} v{champion.version}" in report
    assert "mlflow ui --backend-store-uri sqlite:///" in report
    ui = re.search(r"(\S*mlflow) ui --backend-store-uri", report).group(1)
    assert Path(ui).is_file(), f"{ui} is not a file: the printed command would not run"


def monitoring_after_drift(runs, local_state):
    """Prod's monitoring run that found drift: the scenario's own when its data drifted, else a
    run over drifted rows made here (scored into an emptied inference table, so that the
    window holds only them). None without monitoring."""
    config = load_bundle(PROJECT_DIR)
    prod = resolve(config, "prod", project_dir=PROJECT_DIR)
    monitoring = next((run for run in runs if run.job_key == "monitoring_job"), None)
    if monitoring is None or monitoring.tasks["monitor"].values.get("retrain") == "true":
        return monitoring
    source = prod.variables["scoring_table"]
    drifted = drifted_table(get_spark(), source.rsplit(".", 1)[0] + ".drifted_rows", source)
    shutil.rmtree(table_path(local_state, ModelRef.parse(prod.model_full_name()).predictions_table))
    prod = resolve(config, "prod", variables={"scoring_table": drifted}, project_dir=PROJECT_DIR)
    runner = LocalRunner(PROJECT_DIR, prod, local_state, echo=lambda _: None)
    assert runner.run("batch_inference_job").succeeded
    return runner.run("monitoring_job")


def test_a_retrain_after_drift_learns_from_the_drifted_window(scenario, local_state):
    """Monitoring found drift in prod and retrained there: the new champion saw the new days, the old one did not."""
    runs, _ = scenario
    monitoring = monitoring_after_drift(runs, local_state)
    if monitoring is None or "retrain" not in monitoring.tasks:
        return  # no monitoring, or prod cannot train in this pattern (it fails with instructions instead)
    assert monitoring.tasks["retrain"].state == "SUCCESS", [t.message for t in monitoring.failures]
    prod = resolve(load_bundle(PROJECT_DIR), "prod")
    client = MlflowClient()
    champion = client.get_model_version_by_alias(prod.model_full_name(), "champion")
    previous = client.get_model_version(prod.model_full_name(), champion.tags["previous_champion"])
    window_end = monitoring.tasks["monitor"].values["window_end"]
    assert champion.tags["training_end_date"] == window_end > previous.tags["training_end_date"]
    assert client.get_run(champion.run_id).data.metrics != client.get_run(previous.run_id).data.metrics


def test_running_a_promotion_again_reuses_the_copy(scenario, local_state):
    bundles = resolve_all(load_bundle(PROJECT_DIR))
    client = MlflowClient()
    promoting = [bundle for bundle in bundles.values() if "model_promotion_job" in bundle.jobs]
    for bundle in promoting:  # none for deploy_code, which promotes code, not models
        name = bundle.model_full_name()
        before = sorted(v.version for v in client.search_model_versions(f"name='{name}'"))
        champion = client.get_model_version_by_alias(name, "champion").version
        source = promotion_source(bundles, bundle)
        run = LocalRunner(PROJECT_DIR, bundle, local_state, echo=lambda _: None).run(
            "model_promotion_job", {"source_model": source.model_full_name()}
        )
        assert run.succeeded
        assert sorted(v.version for v in client.search_model_versions(f"name='{name}'")) == before
        assert client.get_model_version_by_alias(name, "champion").version == champion


def _new_champion(bundles, bundle, state):
    """Give ``bundle``'s target a new champion the way its own jobs would (training, or promotion)."""
    runner = LocalRunner(PROJECT_DIR, bundle, state, echo=lambda _: None)
    if "model_training_job" in bundle.jobs:
        assert runner.run("model_training_job").succeeded
        return
    source = promotion_source(bundles, bundle)
    _new_champion(bundles, source, state)
    run = runner.run("model_promotion_job", {"source_model": source.model_full_name()})
    assert run.succeeded, [t.message for t in run.failures]


def test_a_prod_promotion_without_approval_stops_before_deploy(scenario, local_state):
    bundles = resolve_all(load_bundle(PROJECT_DIR))
    prod = bundles["prod"]
    if "model_promotion_job" not in prod.jobs:
        return  # deploy_code: prod trains its own model, nothing is copied into it
    client = MlflowClient()
    champion = client.get_model_version_by_alias(prod.model_full_name(), "champion").version
    source = promotion_source(bundles, prod)
    _new_champion(bundles, source, local_state)  # a new, unapproved version to promote

    run = LocalRunner(PROJECT_DIR, prod, local_state, echo=lambda _: None).run(
        "model_promotion_job", {"source_model": source.model_full_name()}
    )
    assert run.tasks["copy_model"].state == "SUCCESS" and run.tasks["validate"].state == "SUCCESS"
    assert run.tasks["approval"].state == "FAILED" and "not approved" in run.tasks["approval"].message
    assert run.tasks["deploy"].state == "UPSTREAM_FAILED"
    assert client.get_model_version_by_alias(prod.model_full_name(), "champion").version == champion
{%- if cookiecutter.include_feature_store %}


def test_the_scenario_shows_each_targets_feature_tables(scenario, local_state):
    """Per target, the summary names the feature tables its jobs wrote and read: its own catalog's."""
    from {{ cookiecutter.project_slug }}.feature_store import table_names

    heading = "Feature tables by target (written / read):"
    text = summary(PROJECT_DIR, local_state)
    assert heading in text
    section = text.split(heading)[1].splitlines()
    for target, bundle in resolve_all(load_bundle(PROJECT_DIR)).items():
        if target == "test":  # the scenario runs dev, staging and prod
            continue
        line = next(line for line in section if line.strip().startswith(f"{target} "))
        parts = dict(part.split(" ", 1) for part in line.split(maxsplit=1)[1].split("; "))
        for name in table_names(bundle.variables["catalog"], bundle.variables["schema"]):
            # written and read, in the target's own catalog
            assert name in parts["wrote"].split(", ") and name in parts["read"].split(", "), line
{%- if cookiecutter.include_serving_endpoint %}
            assert f"{name}_online" in parts["published"].split(", "), line  # what its endpoint looks up
{%- endif %}
{%- endif %}
