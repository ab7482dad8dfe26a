"""The whole path to production, run locally exactly as the bundle defines the jobs."""

from conftest import PROJECT_DIR
from mlflow.tracking import MlflowClient

from {{ cookiecutter.project_slug }}.local.bundle import load_bundle, resolve
from {{ cookiecutter.project_slug }}.local.runner import LocalRunner
from {{ cookiecutter.project_slug }}.local.scenario import run_scenario, summary


def test_scenario_gives_prod_a_champion_with_lineage(local_state):
    lines = []
    runs = run_scenario(PROJECT_DIR, local_state, echo=lines.append)
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
    report = summary(PROJECT_DIR, local_state)
    assert f"{prod.model_full_name()} v{champion.version}" in report
    assert "mlflow ui --backend-store-uri sqlite:///" in report


def test_running_a_promotion_again_reuses_the_copy(local_state):
    config = load_bundle(PROJECT_DIR)
    client = MlflowClient()
    promoting = [resolve(config, t) for t in config["targets"] if "model_promotion_job" in resolve(config, t).jobs]
    for bundle in promoting:  # none for deploy_code, which promotes code, not models
        name = bundle.model_full_name()
        before = sorted(v.version for v in client.search_model_versions(f"name='{name}'"))
        champion = client.get_model_version_by_alias(name, "champion").version
        source = next(
            resolve(config, t)
            for t in config["targets"]
            if resolve(config, t).variables["catalog"] == bundle.variables["promotion_source_catalog"]
        )
        run = LocalRunner(PROJECT_DIR, bundle, local_state, echo=lambda _: None).run(
            "model_promotion_job", {"source_model": source.model_full_name()}
        )
        assert run.succeeded
        assert sorted(v.version for v in client.search_model_versions(f"name='{name}'")) == before
        assert client.get_model_version_by_alias(name, "champion").version == champion
