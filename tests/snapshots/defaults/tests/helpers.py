"""Command-line arguments the tests pass to entry points, as the bundle would, and the bundle's dates."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1]


def bundle_date(variable: str) -> dt.date:
    """The default of one of the bundle's date variables (databricks.yml), which local runs use too."""
    variables = yaml.safe_load((PROJECT_DIR / "databricks.yml").read_text())["variables"]
    return dt.date.fromisoformat(variables[variable]["default"])


def model_args(model_ref) -> list[str]:
    return [f"--catalog={model_ref.catalog}", f"--schema={model_ref.schema}", f"--model_name={model_ref.name}"]


def data_args(end: str | None = None, fraction: str = "1.0") -> list[str]:
    from my_mlops_project import model  # here, not above: conftest imports this module before Spark starts

    end = end or str(bundle_date("training_end_date"))
    return [f"--training_table={model.SOURCE_TABLE}", f"--training_end_date={end}", f"--sample_fraction={fraction}"]


def unmeetable_thresholds(monkeypatch) -> None:
    """Make validation fail: the headline metric must beat a value no model reaches."""
    from my_mlops_project import model

    name = model.headline_metric()
    kept = model.THRESHOLDS[name]
    impossible = math.inf if kept.greater_is_better else -math.inf
    thresholds = {**model.THRESHOLDS, name: model.Threshold(impossible, kept.greater_is_better, kept.vs_champion)}
    monkeypatch.setattr(model, "THRESHOLDS", thresholds)


def register_on_columns(model_ref, columns: list[str]) -> str:
    """Register a version of ``model_ref`` that model.py's estimator fitted on ``columns`` of the
    training rows (a column the rows lack is all zeros): a model of an earlier or later feature
    set, made without changing model.py's definitions. Returns the version."""
    import mlflow
    from mlflow.models import infer_signature

    from my_mlops_project import model, train
    from my_mlops_project.data import to_pandas, training_frames
    from my_mlops_project.runtime import get_spark

    rows, _ = training_frames(get_spark(), model.SOURCE_TABLE, str(bundle_date("training_end_date")), 1.0)
    frame = to_pandas(rows, [*(c for c in columns if c in model.FEATURES), model.LABEL], "training")
    for column in columns:
        if column not in frame:
            frame[column] = 0
    fitted = model.build_model().fit(frame[columns], frame[model.LABEL])
    example = frame[columns].head(5)
    with mlflow.start_run():
        info = model.log_model(
            fitted,
            name="model",
            signature=infer_signature(example, fitted.predict(example)),
            input_example=example,
            pip_requirements=train.pip_requirements(),
            registered_model_name=model_ref.full_name,
        )
    return str(info.registered_model_version)
