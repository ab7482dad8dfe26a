"""Validate: evaluate a model version on held-out data and mark it ``challenger``.

Evaluation uses ``mlflow.models.evaluate`` on the environment's hold-out days; the
thresholds (``model.THRESHOLDS``) are applied with ``mlflow.validate_evaluation_results``:
absolute ones always, and, when the model has a ``champion``, "no worse than the
champion" on the same data for those marked ``vs_champion``. A version without a full
signature (inputs and outputs) is refused, as Unity Catalog would refuse it, and so is
one that cannot answer a serving request made of its own input example
(``mlflow.models.validate_serving_input``, the check MLflow recommends before serving),
so nothing unservable becomes ``challenger`` or ``champion``.

Each model is scored on the columns its own signature names, so a challenger with a
feature added since the champion was trained is compared with it on the same rows. A
champion that needs a column the data no longer has cannot be compared: the task says so
in one line and checks the challenger against the absolute thresholds only.

``--mode enforce`` (the default, and the jobs' mode in test, staging and prod) fails the
task when a threshold fails, and the version does not become ``challenger``. ``--mode
report`` (the jobs' mode in dev) only reports: the version becomes ``challenger`` whatever
the result, tagged with the outcome. The jobs take it as the job parameter
``validation_mode``.
"""

from __future__ import annotations

import warnings

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException
from mlflow.models.utils import load_serving_example
from mlflow.tracking import MlflowClient

from . import model, params
{%- if cookiecutter.include_feature_store %}
from .data import to_pandas
from .feature_store import holdout_frame
{%- else %}
from .data import to_pandas, training_frames
{%- endif %}
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


def input_columns(model_uri: str) -> list[str]:
    """The columns a model's signature names: what it was trained on and is scored on."""
    return mlflow.models.get_model_info(model_uri).signature.inputs.input_names()


def comparable_champion(model_ref: ModelRef, champion: str | None, version: str, available: list[str]):
    """The champion's input columns when it can be compared with ``version`` on this data, else None."""
    if champion is None or champion == version:
        return None
    columns = input_columns(model_ref.uri(champion))
    lacking = [c for c in columns if c not in available]
    if lacking:
        print(
            f"Champion v{champion} cannot be compared: it needs {', '.join(lacking)}, which the data no longer "
            f"has; v{version} is checked against the absolute thresholds only."
        )
        return None
    return columns


def figures(result) -> str:
    """The thresholds' metrics with enough digits to see why two close models were judged apart."""
    return ", ".join(f"{name} {result.metrics[name]:.5f}" for name in model.THRESHOLDS)


def thresholds(with_baseline: bool) -> dict[str, MetricThreshold]:
    """``model.THRESHOLDS`` for MLflow; "no worse than the champion" only when there is one to compare."""
    return {
        name: MetricThreshold(
            threshold=t.value,
            greater_is_better=t.greater_is_better,
            **({"min_relative_change": 0.0} if t.vs_champion and with_baseline else {}),
        )
        for name, t in model.THRESHOLDS.items()
    }


def rules_text(with_baseline: bool) -> str:
    """The thresholds as a reader checks them, e.g. ``accuracy_score >= 0.8``."""
    rules = []
    for name, t in model.THRESHOLDS.items():
        sign = ">=" if t.greater_is_better else "<="
        rules.append(f"{name} {sign} {t.value:g}")
        if t.vs_champion and with_baseline:
            rules.append(f"{name} {sign} the champion's")
    return ", ".join(rules)


def evaluate(model_uri: str, data):
    with warnings.catch_warnings():  # the features have no missing values: integer columns are right
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        return mlflow.models.evaluate(
            model_uri,
            data,
            targets=model.LABEL,
            model_type=model.mlflow_model_type(),
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
{%- if cookiecutter.include_feature_store %}
    # The hold-out rows with their lookup keys and looked-up features (the model's signature names both).
    holdout_df = holdout_frame(spark, model_ref, args.training_table, args.training_end_date, args.sample_fraction)
{%- else %}
    _, holdout_df = training_frames(spark, args.training_table, args.training_end_date, args.sample_fraction)
{%- endif %}

    columns = input_columns(model_ref.uri(version))
    missing = [c for c in columns if c not in holdout_df.columns]
    if missing:
        raise JobError(
            f"{model_ref.full_name} v{version} needs {', '.join(missing)}, which the hold-out data lacks: "
            "model.add_features must compute every feature the model was trained on."
        )
    champion = alias_version(client, model_ref, CHAMPION)
    champion_columns = comparable_champion(model_ref, champion, version, holdout_df.columns)
    compare = champion_columns is not None
    needed = list(dict.fromkeys([*columns, *(champion_columns or [])]))
    label = model.LABEL
    holdout = to_pandas(holdout_df, [*needed, label], "validation (the hold-out days)")

    with mlflow.start_run(run_name=f"validate {model_ref.name} v{version}"):
        mlflow.log_params({"model_version": version, "champion_version": champion or "none", "mode": args.mode})
        candidate = evaluate(model_ref.uri(version), holdout[[*columns, label]])
        baseline = evaluate(model_ref.uri(champion), holdout[[*champion_columns, label]]) if compare else None
        rules = thresholds(with_baseline=compare)
        try:
            mlflow.validate_evaluation_results(rules, candidate, baseline)
            passed, detail = True, "all thresholds met"
        except ModelValidationFailedException as failure:
            passed, detail = False, str(failure)
        mlflow.log_metric("validation_passed", float(passed))

    print(
        f"{model_ref.full_name} v{version} on {len(holdout)} hold-out rows: {figures(candidate)} "
        f"({rules_text(with_baseline=compare)})"
    )
    if compare:
        headline = model.headline_metric()
        champion_value = baseline.metrics[headline]
        difference = candidate.metrics[headline] - champion_value
        relative = f" ({100 * difference / champion_value:+.3f}%)" if champion_value else ""
        print(
            f"  champion v{champion} on the same rows: {figures(baseline)}; "
            f"v{version}'s {headline} differs by {difference:+.5f}{relative}"
        )
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
