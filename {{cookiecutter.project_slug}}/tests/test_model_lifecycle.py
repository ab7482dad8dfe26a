"""Train -> validate -> deploy -> rollback, and the ways each refuses to go on."""

from pathlib import Path

import mlflow
import pytest
from helpers import data_args, model_args
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression

from {{ cookiecutter.project_slug }} import deploy, train, validate
from {{ cookiecutter.project_slug }}.names import CHALLENGER, CHAMPION
from {{ cookiecutter.project_slug }}.registry import alias_version
from {{ cookiecutter.project_slug }}.runtime import JobError

EXPERIMENT = "--experiment_name=/tests/unit"


def validate_args(model_ref, version, *extra):
    return [*model_args(model_ref), f"--model_version={version}", EXPERIMENT, *data_args(), *extra]


def test_train_registers_a_version_with_a_full_signature(trained):
    model_ref, version = trained
    info = mlflow.models.get_model_info(model_ref.uri(version))
    assert info.signature.inputs is not None and info.signature.outputs is not None
    tags = MlflowClient().get_model_version(model_ref.full_name, version).tags
    assert tags["trained_in"] == model_ref.catalog
    assert tags["training_end_date"] == "2016-02-14"


def test_logged_requirements_cover_what_mlflow_infers(trained, tmp_path):
    """train.MODEL_REQUIREMENTS replaces MLflow's inference; it must list every package the model loads."""
    model_ref, version = trained
    local = mlflow.artifacts.download_artifacts(model_ref.uri(version), dst_path=str(tmp_path))
    logged = set(Path(local, "requirements.txt").read_text().split())
    inferred = set(mlflow.models.infer_pip_requirements(local, "sklearn"))
    assert inferred and inferred <= logged, sorted(inferred - logged)


def test_validate_deploy_and_rollback(trained):
    model_ref, first = trained
    client = MlflowClient()
    assert validate.main(validate_args(model_ref, first)) is True
    assert alias_version(client, model_ref, CHALLENGER) == first
    deploy.main(model_args(model_ref))
    assert alias_version(client, model_ref, CHAMPION) == first
    assert alias_version(client, model_ref, CHALLENGER) is None

    second = train.main([*model_args(model_ref), EXPERIMENT, *data_args()])
    validate.main(validate_args(model_ref, second))  # same data, same model: not worse than the champion
    deploy.main(model_args(model_ref))
    assert alias_version(client, model_ref, CHAMPION) == second
    assert client.get_model_version(model_ref.full_name, second).tags["previous_champion"] == first

    assert deploy.rollback(model_args(model_ref)) == first
    assert alias_version(client, model_ref, CHAMPION) == first
    versions = {str(v.version) for v in client.search_model_versions(f"name='{model_ref.full_name}'")}
    assert versions == {first, second}  # nothing deleted


def test_failed_validation_leaves_the_champion_unchanged(champion):
    model_ref, version = champion
    candidate = train.main([*model_args(model_ref), EXPERIMENT, *data_args()])
    with pytest.raises(JobError, match="Validation failed.*champion unchanged"):
        validate.main(validate_args(model_ref, candidate, "--min_r2=0.9999"))
    client = MlflowClient()
    assert alias_version(client, model_ref, CHAMPION) == version
    assert alias_version(client, model_ref, CHALLENGER) is None
    assert client.get_model_version(model_ref.full_name, candidate).tags["validation_status"] == "failed"
    with pytest.raises(JobError, match="Nothing to deploy"):
        deploy.main(model_args(model_ref))


def test_report_mode_reports_and_continues(trained):
    model_ref, version = trained
    assert validate.main(validate_args(model_ref, version, "--min_r2=0.9999", "--mode=report")) is False
    client = MlflowClient()
    assert alias_version(client, model_ref, CHALLENGER) == version
    assert client.get_model_version(model_ref.full_name, version).tags["validation_status"] == "failed_report_only"


@pytest.mark.slow
def test_a_model_without_signature_is_refused(spark, fresh_model):
    import pandas as pd

    X = pd.DataFrame({"trip_distance": [1.0, 2.0, 3.0]})
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            LinearRegression().fit(X, [3.0, 5.0, 7.0]),
            name="model",
            registered_model_name=fresh_model.full_name,
            serialization_format="cloudpickle",
            pip_requirements=train.pip_requirements(),  # skips MLflow's requirement inference
        )
    with pytest.raises(JobError, match="no signature with both inputs and outputs"):
        validate.main(validate_args(fresh_model, info.registered_model_version))
    assert alias_version(MlflowClient(), fresh_model, CHALLENGER) is None


def test_rollback_without_a_previous_champion_fails_clearly(champion):
    model_ref, version = champion
    with pytest.raises(JobError, match=f"v{version} has no previous champion"):
        deploy.rollback(model_args(model_ref))


def test_unknown_version_is_named(fresh_model, trained):
    model_ref, _ = trained
    with pytest.raises(JobError, match="has no version '99'"):
        validate.main(validate_args(model_ref, "99"))
