"""Train -> validate -> deploy -> rollback, and the ways each refuses to go on."""

import re
from pathlib import Path

import mlflow
import pytest
from helpers import (
    bundle_date,
    data_args,
    model_args,
    register_on_columns,
    register_small_version,
    unmeetable_thresholds,
)
from mlflow.tracking import MlflowClient

from {{ cookiecutter.project_slug }} import deploy, model, train, validate
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
    assert tags["training_end_date"] == str(bundle_date("training_end_date"))


def test_train_logs_the_model_params_and_every_threshold_metric(trained):
    model_ref, version = trained
    run = MlflowClient().get_run(MlflowClient().get_model_version(model_ref.full_name, version).run_id)
    assert {k: str(v) for k, v in model.MODEL_PARAMS.items()}.items() <= run.data.params.items()
    assert {f"holdout_{name}" for name in model.THRESHOLDS} <= set(run.data.metrics)


def test_logged_requirements_cover_what_mlflow_infers(trained, tmp_path, monkeypatch):
    """model.MODEL_REQUIREMENTS replaces MLflow's inference; it must list every package the model loads.

    MLflow's inference of what the model imports, that is: in a uv project (after `uv sync`)
    MLflow would otherwise answer with the whole project's lock file (see train.py).
    """
    monkeypatch.setenv("MLFLOW_UV_AUTO_DETECT", "false")
    model_ref, version = trained
    local = mlflow.artifacts.download_artifacts(model_ref.uri(version), dst_path=str(tmp_path))
    logged = set(Path(local, "requirements.txt").read_text().split())
    flavors = mlflow.models.get_model_info(model_ref.uri(version)).flavors
    flavor = next((name for name in flavors if name != "python_function"), "python_function")
    inferred = set(mlflow.models.infer_pip_requirements(local, flavor))
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


def test_failed_validation_leaves_the_champion_unchanged(champion, monkeypatch):
    model_ref, version = champion
    candidate = train.main([*model_args(model_ref), EXPERIMENT, *data_args()])
    unmeetable_thresholds(monkeypatch)
    with pytest.raises(JobError, match="Validation failed.*champion unchanged"):
        validate.main(validate_args(model_ref, candidate))
    client = MlflowClient()
    assert alias_version(client, model_ref, CHAMPION) == version
    assert alias_version(client, model_ref, CHALLENGER) is None
    assert client.get_model_version(model_ref.full_name, candidate).tags["validation_status"] == "failed"
    with pytest.raises(JobError, match="Nothing to deploy"):
        deploy.main(model_args(model_ref))


def test_report_mode_reports_and_continues(trained, monkeypatch):
    model_ref, version = trained
    unmeetable_thresholds(monkeypatch)
    assert validate.main(validate_args(model_ref, version, "--mode=report")) is False
    client = MlflowClient()
    assert alias_version(client, model_ref, CHALLENGER) == version
    assert client.get_model_version(model_ref.full_name, version).tags["validation_status"] == "failed_report_only"


@pytest.mark.slow
def test_a_model_without_signature_is_refused(spark, fresh_model):
    version = register_small_version(fresh_model, signature=False)
    with pytest.raises(JobError, match="no signature with both inputs and outputs"):
        validate.main(validate_args(fresh_model, version))
    assert alias_version(MlflowClient(), fresh_model, CHALLENGER) is None


def test_rollback_with_nothing_to_roll_back_says_so_and_succeeds(champion, capsys):
    """The first champion has no predecessor: the job says so and ends successfully, champion unchanged."""
    model_ref, version = champion
    assert deploy.rollback(model_args(model_ref)) == version
    assert alias_version(MlflowClient(), model_ref, CHAMPION) == version
    assert "nothing to roll back" in capsys.readouterr().out


def test_rollback_without_a_champion_fails_clearly(trained):
    model_ref, _ = trained
    with pytest.raises(JobError, match="has no 'champion' alias"):
        deploy.rollback(model_args(model_ref))


def test_unknown_version_is_named(fresh_model, trained):
    model_ref, _ = trained
    with pytest.raises(JobError, match="has no version '99'"):
        validate.main(validate_args(model_ref, "99"))


def test_train_validate_deploy_on_a_small_sample(snapshots, fresh_model, tmp_path, monkeypatch):
    """The training job's three steps on a 5% sample, in seconds: the quick loop's smoke test of training.

    Run from a uv project (a folder with pyproject.toml and uv.lock, as after `uv sync`): the
    logged model still requires only its own packages, model.MODEL_REQUIREMENTS.
    """
    for name in ("pyproject.toml", "uv.lock"):
        (tmp_path / name).write_text("")
    monkeypatch.chdir(tmp_path)
    small = data_args(fraction="0.05")
    version = train.main([*model_args(fresh_model), EXPERIMENT, *small])
    assert validate.main([*model_args(fresh_model), f"--model_version={version}", EXPERIMENT, *small]) is True
    assert deploy.main(model_args(fresh_model)) == version
    local = mlflow.artifacts.download_artifacts(fresh_model.uri(version), dst_path=str(tmp_path / "model"))
    assert Path(local, "requirements.txt").read_text().split() == train.pip_requirements()


def input_columns(model_ref, version) -> list[str]:
    return mlflow.models.get_model_info(model_ref.uri(version)).signature.inputs.input_names()


def deployed(model_ref, version) -> str:
    validate.main(validate_args(model_ref, version, "--mode=report"))
    deploy.main(model_args(model_ref))
    return version


@pytest.mark.slow
{%- if cookiecutter.include_feature_store %}
@pytest.mark.skip(reason="registers models on add_features columns; with feature tables they come from lookups")
{%- endif %}
def test_a_feature_added_since_the_champion_is_compared_on_each_models_own_columns(spark, fresh_model, capsys):
    first = deployed(fresh_model, register_on_columns(fresh_model, model.FEATURES[:-1]))
    second = train.main([*model_args(fresh_model), EXPERIMENT, *data_args()])
    assert model.FEATURES[-1] in input_columns(fresh_model, second)
    assert model.FEATURES[-1] not in input_columns(fresh_model, first)
    capsys.readouterr()
    validate.main(validate_args(fresh_model, second, "--mode=report"))  # dev's mode
    out = capsys.readouterr().out
    assert f"champion v{first}" in out and f"{model.headline_metric()} differs by" in out
    assert alias_version(MlflowClient(), fresh_model, CHALLENGER) == second


@pytest.mark.slow
{%- if cookiecutter.include_feature_store %}
@pytest.mark.skip(reason="registers models on add_features columns; with feature tables they come from lookups")
{%- endif %}
def test_a_champion_needing_a_removed_feature_is_not_compared_and_says_so(spark, fresh_model, capsys):
    retired = "retired_feature"
    old = register_on_columns(fresh_model, [*model.FEATURES, retired])  # champion of an earlier model.py
    MlflowClient().set_registered_model_alias(fresh_model.full_name, CHAMPION, old)
    without = train.main([*model_args(fresh_model), EXPERIMENT, *data_args()])
    capsys.readouterr()
    assert validate.main(validate_args(fresh_model, without)) is True
    out = capsys.readouterr().out
    assert f"Champion v{old} cannot be compared: it needs {retired}" in out
    assert alias_version(MlflowClient(), fresh_model, CHALLENGER) == without


def test_validation_prints_metrics_with_enough_digits_to_see_why(champion, monkeypatch, capsys):
    """Two models a hair apart must not read "0.870 vs 0.870": every figure has 5 decimals."""
    model_ref, first = champion
    second = train.main([*model_args(model_ref), EXPERIMENT, *data_args()])
    unmeetable_thresholds(monkeypatch)
    with pytest.raises(JobError, match="Validation failed") as failure:
        validate.main(validate_args(model_ref, second))
    out = capsys.readouterr().out + str(failure.value)
    names = "|".join(map(re.escape, model.THRESHOLDS))
    decimals = re.findall(rf"(?:{names}) -?\d+\.(\d+)", out)
    assert len(decimals) >= 2 * len(model.THRESHOLDS), out  # the version's and the champion's
    assert all(len(d) >= 5 for d in decimals), out
    assert f"champion v{first}" in out
