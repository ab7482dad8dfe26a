"""Train: fit the fare model, log it to MLflow with a signature, register a new version.

The MLflow run and the model version record the commit, target and job run that produced
them (tags ``git_commit``, ``target``, ``job_run_id``) when the job passes them.

Publishes the new version as the task value ``model_version`` for the validation task.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import warnings

import mlflow
import numpy as np
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from . import params
from .data import FEATURES, LABEL, to_pandas, training_frames
from .registry import add_provenance_arguments, provenance, tag_version
from .runtime import configure_mlflow, get_spark, set_task_value, use_experiment

MODEL_PARAMS = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "random_state": 0}
# The packages the logged model needs to load and predict, pinned to this environment's
# versions: what MLflow's requirement inference finds for this model, without the seconds
# it takes to load the model again in a subprocess. A different model needs its own
# packages here; tests/test_model_lifecycle.py compares the list with MLflow's inference.
#
# These, and not the project's uv.lock, are what the model requires wherever it is logged:
# the lock also holds Spark, the Databricks SDK and the test tools, which a serving endpoint
# would install for nothing. MLflow (3.17+) reads a working directory with uv.lock and
# pyproject.toml as the model's project (MLFLOW_UV_AUTO_DETECT, on by default), so the log
# call below runs with that detection off.
MODEL_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy")


def pip_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in MODEL_REQUIREMENTS]


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


def build_model() -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(**MODEL_PARAMS)


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    return {
        "root_mean_squared_error": float(root_mean_squared_error(y_true, y_pred)),
        "mean_absolute_error": float(mean_absolute_error(y_true, y_pred)),
        "r2_score": float(r2_score(y_true, y_pred)),
    }


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    spark = get_spark()
    configure_mlflow()
    use_experiment(args.experiment_name)

    train_df, holdout_df = training_frames(spark, args.training_table, args.training_end_date, args.sample_fraction)
    train = to_pandas(train_df, FEATURES + [LABEL], "training")
    holdout = to_pandas(holdout_df, FEATURES + [LABEL], "the hold-out days")
    model = build_model().fit(train[FEATURES], train[LABEL])
    metrics = {
        f"holdout_{k}": v for k, v in regression_metrics(holdout[LABEL], model.predict(holdout[FEATURES])).items()
    }

    example = train[FEATURES].head(5)
    with warnings.catch_warnings():  # the features have no missing values: integer columns are right
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(example, np.asarray(model.predict(example), dtype="float64"))
    level = logging.getLogger("mlflow.sklearn").level
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)  # the cloudpickle notice, see below
    with mlflow.start_run(run_name=f"train {model_ref.name}") as run, without_uv_project_detection():
        mlflow.log_params(MODEL_PARAMS)
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
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            registered_model_name=model_ref.full_name,
            # The format every MLflow 3 release reads (Databricks Runtime 17.3 ships 3.0).
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
    logging.getLogger("mlflow.sklearn").setLevel(level)
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(model_ref.full_name, version, "training_end_date", args.training_end_date)
    client.set_model_version_tag(model_ref.full_name, version, "trained_in", model_ref.catalog)
    tag_version(client, model_ref, version, provenance(args))
    print(
        f"Registered {model_ref.full_name} version {version} (run {run.info.run_id}), trained on {len(train)} trips "
        f"to {args.training_end_date}; hold-out RMSE {metrics['holdout_root_mean_squared_error']:.5f}, "
        f"R2 {metrics['holdout_r2_score']:.5f}"
    )
    set_task_value("model_version", version)
    return version


if __name__ == "__main__":
    main()
