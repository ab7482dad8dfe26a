"""Train: fit the model, log it to MLflow with a signature, register a new version.

The problem (data, features, estimator, its parameters, metrics and how it is logged) is
read from ``model.py``.

The MLflow run and the model version record the commit, target and job run that produced
them (tags ``git_commit``, ``target``, ``job_run_id``) when the job passes them.

Publishes the new version as the task value ``model_version`` for the validation task.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
{%- if not cookiecutter.include_feature_store %}
import warnings
{%- endif %}

import mlflow
{%- if not cookiecutter.include_feature_store %}
from mlflow.models import infer_signature
{%- endif %}
from mlflow.tracking import MlflowClient

from . import model, params
{%- if cookiecutter.include_feature_store %}
from .data import to_pandas
from .feature_store import log_model, training_sets
{%- else %}
from .data import to_pandas, training_frames
{%- endif %}
from .registry import add_provenance_arguments, provenance, tag_version
from .runtime import configure_mlflow, get_spark, set_task_value, use_experiment


def pip_requirements() -> list[str]:
    """``model.MODEL_REQUIREMENTS`` pinned to this environment's versions.

    What MLflow's requirement inference finds for the model, without the seconds it takes to
    load the model again in a subprocess. These, and not the project's uv.lock, are what the
    model requires wherever it is logged: the lock also holds Spark, the Databricks SDK and
    the test tools, which a serving endpoint would install for nothing. MLflow (3.17+) reads
    a working directory with uv.lock and pyproject.toml as the model's project
    (MLFLOW_UV_AUTO_DETECT, on by default), so the log call below runs with that detection off.
    """
    return [f"{name}=={importlib.metadata.version(name)}" for name in model.MODEL_REQUIREMENTS]


@contextlib.contextmanager
def without_uv_project_detection():
    """MLFLOW_UV_AUTO_DETECT=false while the model is logged; the previous value afterwards."""
    previous = os.environ.get("MLFLOW_UV_AUTO_DETECT")
    os.environ["MLFLOW_UV_AUTO_DETECT"] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_UV_AUTO_DETECT", None)
        else:
            os.environ["MLFLOW_UV_AUTO_DETECT"] = previous


def build_parser():
    p = params.parser("train", "Train the model and register a new version.")
    params.add_model(p)
    params.add_experiment(p)
    params.add_training_data(p)
    add_provenance_arguments(p)
    return p


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    spark = get_spark()
    configure_mlflow()
    use_experiment(args.experiment_name)
{% if cookiecutter.include_feature_store %}
    # The features, looked up point-in-time in this catalog's feature tables (feature_store.py).
    train_set, holdout_set = training_sets(
        spark, model_ref, args.training_table, args.training_end_date, args.sample_fraction
    )
    train_df, holdout_df = train_set.load_df(), holdout_set.load_df()
{%- else %}
    train_df, holdout_df = training_frames(spark, args.training_table, args.training_end_date, args.sample_fraction)
{%- endif %}
    features, label = model.FEATURES, model.LABEL
    train = to_pandas(train_df, [*features, label], "training")
    holdout = to_pandas(holdout_df, [*features, label], "the hold-out days")
    estimator = model.build_model().fit(train[features], train[label])
    holdout_metrics = model.metrics(estimator, holdout[features], holdout[label])
    metrics = {f"holdout_{name}": value for name, value in holdout_metrics.items()}
{% if not cookiecutter.include_feature_store %}
    example = train[features].head(5)
    with warnings.catch_warnings():  # the features have no missing values: integer columns are right
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(example, estimator.predict(example))
{%- endif %}
    with mlflow.start_run(run_name=f"train {model_ref.name}") as run, without_uv_project_detection():
        mlflow.log_params(model.MODEL_PARAMS)
        mlflow.log_params(
            {
                "training_table": args.training_table,
                "training_end_date": args.training_end_date,
                "sample_fraction": args.sample_fraction,
                "training_rows": len(train),
                "holdout_rows": len(holdout),
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.set_tags(provenance(args))
{%- if cookiecutter.include_feature_store %}
        # fe.log_model: the model carries its feature spec; its signature and input example
        # come from the training set (lookup keys required, features optional).
        version = log_model(estimator, train_set, model_ref, pip_requirements=pip_requirements())
{%- else %}
        info = model.log_model(
            estimator,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            registered_model_name=model_ref.full_name,
        )
{%- endif %}
{%- if not cookiecutter.include_feature_store %}
    version = str(info.registered_model_version)
{%- endif %}
    client = MlflowClient()
    client.set_model_version_tag(model_ref.full_name, version, "training_end_date", args.training_end_date)
    client.set_model_version_tag(model_ref.full_name, version, "trained_in", model_ref.catalog)
    tag_version(client, model_ref, version, provenance(args))
    headline = model.headline_metric()
    print(
        f"Registered {model_ref.full_name} version {version} (run {run.info.run_id}), trained on {len(train)} rows "
        f"to {args.training_end_date}; hold-out {headline} {metrics[f'holdout_{headline}']:.5f}"
    )
    set_task_value("model_version", version)
    return version


if __name__ == "__main__":
    main()
