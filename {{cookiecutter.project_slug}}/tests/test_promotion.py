"""Copying a model version between catalogs, and the approval gate."""

import pytest
from helpers import data_args, model_args, register_on_columns, unmeetable_thresholds
from mlflow.tracking import MlflowClient

from {{ cookiecutter.project_slug }} import deploy, model, promotion, train, validate
from {{ cookiecutter.project_slug }}.names import CHAMPION, ModelRef
from {{ cookiecutter.project_slug }}.registry import alias_version
from {{ cookiecutter.project_slug }}.runtime import JobError


@pytest.fixture
def destination(fresh_model):
    return ModelRef("unit_prod", fresh_model.schema, fresh_model.name)


def copy(source, destination, version=""):
    return promotion.copy_model(
        [f"--source_model={source.full_name}", f"--source_version={version}", *model_args(destination)]
    )


def test_copy_is_idempotent_and_records_its_source(champion, destination):
    source, version = champion
    first = copy(source, destination)
    assert copy(source, destination) == first
    client = MlflowClient()
    versions = client.search_model_versions(f"name='{destination.full_name}'")
    assert [str(v.version) for v in versions] == [first]
    assert versions[0].tags[promotion.SOURCE_TAG] == source.uri(version)


def test_copy_of_an_explicit_version(trained, destination):
    source, version = trained  # no champion yet: an explicit version still copies
    copied = copy(source, destination, version)
    tags = MlflowClient().get_model_version(destination.full_name, copied).tags
    assert tags[promotion.SOURCE_TAG] == source.uri(version)


def test_copy_without_a_source_champion_says_what_to_run(trained, destination):
    source, _ = trained
    with pytest.raises(JobError, match=f"{source.full_name} has no 'champion' alias.*model_training_job"):
        copy(source, destination)
    missing = ModelRef("nowhere", "ml", "absent")
    with pytest.raises(JobError, match="nowhere.ml.absent does not exist"):
        copy(missing, destination)


def test_approval_gate(champion, destination):
    source, _ = champion
    version = copy(source, destination)
    args = [*model_args(destination), f"--model_version={version}"]
    promotion.approval_gate([*args, "--approval_required=false"])
    with pytest.raises(JobError, match="is not approved"):
        promotion.approval_gate([*args, "--approval_required=true"])
    with pytest.raises(JobError, match="has no version '99'"):
        promotion.approve(destination.full_name, "99")
    promotion.approve(destination.full_name, version)
    promotion.approval_gate([*args, "--approval_required=true"])


def test_approval_tag_is_compared_case_insensitively(champion, destination):
    """Catalog Explorer's approve action and hand-set tags: `Approved` counts, `yes` does not."""
    source, _ = champion
    version = copy(source, destination)
    args = [*model_args(destination), f"--model_version={version}", "--approval_required=true"]
    client = MlflowClient()
    client.set_model_version_tag(destination.full_name, version, promotion.APPROVAL_TAG, "yes")
    with pytest.raises(JobError, match="is not approved"):
        promotion.approval_gate(args)
    client.set_model_version_tag(destination.full_name, version, promotion.APPROVAL_TAG, " Approved ")
    promotion.approval_gate(args)


def test_approval_given_in_ci_is_recorded_on_the_version(champion, destination):
    """One approval: the approval-gated CI job passes who approved and the run; no second step."""
    source, _ = champion
    version = copy(source, destination)
    args = [*model_args(destination), f"--model_version={version}", "--approval_required=true"]
    run = "https://ci.example.com/runs/42"
    with pytest.raises(JobError, match="go together"):
        promotion.approval_gate([*args, "--approved_by=alice"])
    with pytest.raises(JobError, match="go together"):
        promotion.approval_gate([*args, f"--approval_run={run}"])
    assert promotion.APPROVAL_TAG not in MlflowClient().get_model_version(destination.full_name, version).tags
    promotion.approval_gate([*args, "--approved_by=alice", f"--approval_run={run}"])
    tags = MlflowClient().get_model_version(destination.full_name, version).tags
    assert tags[promotion.APPROVAL_TAG] == promotion.APPROVED
    assert tags[promotion.APPROVED_BY_TAG] == "alice"
    assert tags[promotion.APPROVAL_RUN_TAG] == run
    # Without approval_required nothing is recorded: staging promotions need no approval.
    other = copy(source, ModelRef("unit_staging", destination.schema, destination.name))
    staging_args = [*model_args(ModelRef("unit_staging", destination.schema, destination.name))]
    promotion.approval_gate(
        [*staging_args, f"--model_version={other}", "--approval_required=false", "--approved_by=alice"]
    )
    staging_tags = MlflowClient().get_model_version(f"unit_staging.{destination.schema}.{destination.name}", other).tags
    assert promotion.APPROVAL_TAG not in staging_tags


def test_failed_validation_after_copy_leaves_the_target_champion(champion, destination, monkeypatch):
    source, _ = champion
    first = copy(source, destination)
    validate_args = [
        *model_args(destination),
        f"--model_version={first}",
        "--experiment_name=/tests/unit",
        *data_args(),
    ]
    validate.main(validate_args)
    deploy.main(model_args(destination))
    client = MlflowClient()
    other = ModelRef("unit_other", source.schema, source.name)
    second = copy(source, other)
    third = copy(other, destination, second)  # a new version in the destination
    unmeetable_thresholds(monkeypatch)
    with pytest.raises(JobError, match="Validation failed"):
        validate.main([*validate_args[:3], f"--model_version={third}", *validate_args[4:]])
    assert alias_version(client, destination, CHAMPION) == first


@pytest.mark.slow
{%- if cookiecutter.include_feature_store %}
@pytest.mark.skip(reason="registers models on add_features columns; with feature tables they come from lookups")
{%- endif %}
def test_a_feature_added_upstream_is_promoted_over_a_champion_without_it(spark, fresh_model, destination):
    """Dev trained with a new feature; the destination's champion predates it. Each scores on its own columns.

    The old champion is fitted on a few hundred rows, so the new model is better whatever the
    feature adds; what is tested is that the two are compared, each on its own columns."""
    old = copy(fresh_model, destination, register_on_columns(fresh_model, model.FEATURES[:-1], rows=200))
    validate_args = [*model_args(destination), "--experiment_name=/tests/unit", *data_args()]
    validate.main([*validate_args, f"--model_version={old}"])
    deploy.main(model_args(destination))

    new = train.main([*model_args(fresh_model), "--experiment_name=/tests/unit", *data_args()])
    copied = copy(fresh_model, destination, new)
    validate.main([*validate_args, f"--model_version={copied}"])  # the promotion job's mode: enforce
    deploy.main(model_args(destination))
    assert alias_version(MlflowClient(), destination, CHAMPION) == copied


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("deploy_models", "model_training_job -t dev"), ("hybrid", "model_training_job -t staging")],
)
def test_retraining_needed_says_which_job_to_run_where(pattern, expected):
    with pytest.raises(JobError, match=expected):
        promotion.retraining_needed(["--model_name=m", "--target=prod", f"--pattern={pattern}"])
