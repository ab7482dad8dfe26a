"""Validate: evaluate a model version on held-out data and mark it ``challenger``.

Evaluation uses ``mlflow.models.evaluate`` on the environment's hold-out days; the
thresholds are applied with ``mlflow.validate_evaluation_results``: absolute ones
always, and, when the model has a ``champion``, "no worse than the champion" on the
same data. A version without a full signature (inputs and outputs) is refused, as
Unity Catalog would refuse it, and so is one that cannot answer a serving request made
of its own input example (``mlflow.models.validate_serving_input``, the check MLflow
recommends before serving), so nothing unservable becomes ``challenger`` or ``champion``.

``--mode enforce`` (the default) fails the task when a threshold fails, and the version
does not become ``challenger``. ``--mode report`` only reports: the version becomes
``challenger`` whatever the result, tagged with the outcome.
"""

from __future__ import annotations

import warnings

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException
from mlflow.models.utils import load_serving_example
from mlflow.tracking import MlflowClient

from . import params
from .data import FEATURES, LABEL, to_pandas, training_frames
from .names import CHALLENGER, CHAMPION, ModelRef
from .registry import alias_version, get_version
from .runtime import JobError, configure_mlflow, get_spark, use_experiment


def build_parser():
    p = params.parser("validate", "Evaluate a model version and mark it challenger.")
    params.add_model(p)
    p.add_argument("--model_version", required=True, help="version to validate")
    params.add_experiment(p)
    params.add_training_data(p)
    p.add_argument("--mode", choices=("enforce", "report"), default="enforce")
    p.add_argument("--max_rmse", type=float, default=10.0, help="absolute RMSE ceiling")
    p.add_argument("--min_r2", type=float, default=0.5, help="absolute R2 floor")
    return p


def check_signature(model_ref: ModelRef, version: str) -> None:
    """Refuse a version whose signature lacks inputs or outputs, as Unity Catalog does."""
    info = mlflow.models.get_model_info(model_ref.uri(version))
    signature = info.signature
    if signature is None or signature.inputs is None or signature.outputs is None:
        raise JobError(
            f"{model_ref.full_name} version {version} has no signature with both inputs and "
            "outputs; Unity Catalog refuses such models. Log it with "
            "signature=infer_signature(X, model.predict(X))."
        )


def check_servable(model_ref: ModelRef, version: str) -> None:
    """Refuse a version that cannot answer a serving request made of its logged input example."""
    uri = model_ref.uri(version)
    try:
        example = load_serving_example(uri)
    except (MlflowException, OSError):
        example = None
    if not example:
        raise JobError(
            f"{model_ref.full_name} version {version} has no input example, so it cannot be checked for "
            "serving. Log it with input_example=<a few rows of features> (train.py does)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mlflow.models.validate_serving_input(uri, example)
    except Exception as error:
        raise JobError(
            f"{model_ref.full_name} version {version} cannot be served: a serving request made of its own "
            f"input example fails ({error.__class__.__name__}: {error}). Check that the signature matches "
            "the input example and that the model loads with its logged dependencies."
        ) from error


def thresholds(args, with_baseline: bool) -> dict[str, MetricThreshold]:
    relative = {"min_relative_change": 0.0} if with_baseline else {}
    return {
        "root_mean_squared_error": MetricThreshold(threshold=args.max_rmse, greater_is_better=False, **relative),
        "r2_score": MetricThreshold(threshold=args.min_r2, greater_is_better=True),
    }


def evaluate(model_uri: str, data):
    with warnings.catch_warnings():  # the features have no missing values: integer columns are right
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        return mlflow.models.evaluate(
            model_uri,
            data,
            targets=LABEL,
            model_type="regressor",
            evaluators=["default"],
            evaluator_config={"default": {"log_model_explainability": False}},
        )


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> bool:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    version = args.model_version
    configure_mlflow()
    client = MlflowClient()
    get_version(client, model_ref, version)  # clear error if it does not exist
    check_signature(model_ref, version)
    check_servable(model_ref, version)

    spark = get_spark()
    use_experiment(args.experiment_name)
    _, holdout_df = training_frames(spark, args.training_table, args.training_end_date, args.sample_fraction)
    holdout = to_pandas(holdout_df, FEATURES + [LABEL], "validation (the hold-out days)")

    champion = alias_version(client, model_ref, CHAMPION)
    compare = champion is not None and champion != version
    with mlflow.start_run(run_name=f"validate {model_ref.name} v{version}"):
        mlflow.log_params({"model_version": version, "champion_version": champion or "none", "mode": args.mode})
        candidate = evaluate(model_ref.uri(version), holdout)
        baseline = evaluate(model_ref.uri(champion), holdout) if compare else None
        rules = thresholds(args, with_baseline=compare)
        try:
            mlflow.validate_evaluation_results(rules, candidate, baseline)
            passed, detail = True, "all thresholds met"
        except ModelValidationFailedException as failure:
            passed, detail = False, str(failure)
        mlflow.log_metric("validation_passed", float(passed))

    rmse, r2 = candidate.metrics["root_mean_squared_error"], candidate.metrics["r2_score"]
    against = f" and champion v{champion} (RMSE {baseline.metrics['root_mean_squared_error']:.3f})" if compare else ""
    print(f"{model_ref.full_name} v{version}: RMSE {rmse:.3f}, R2 {r2:.3f}; checked against thresholds{against}")
    status = "passed" if passed else ("failed_report_only" if args.mode == "report" else "failed")
    client.set_model_version_tag(model_ref.full_name, version, "validation_status", status)
    if not passed and args.mode == "enforce":
        raise JobError(f"Validation failed for {model_ref.full_name} v{version}; champion unchanged.\n{detail}")
    if not passed:
        print(f"Validation failed, but mode=report: continuing.\n{detail}")
    try:
        client.set_registered_model_alias(model_ref.full_name, CHALLENGER, version)
    except MlflowException as error:
        raise JobError(f"Could not set {CHALLENGER} on {model_ref.full_name} v{version}: {error}") from error
    print(f"{model_ref.full_name} v{version} is now {CHALLENGER}")
    return passed


if __name__ == "__main__":
    main()
