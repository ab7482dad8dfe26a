"""Command-line arguments the tests pass to entry points, as the bundle would; the bundle's dates; drifted rows."""

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
    from {{ cookiecutter.project_slug }} import model  # here, not above: conftest imports this module before Spark starts

    end = end or str(bundle_date("training_end_date"))
    return [f"--training_table={model.SOURCE_TABLE}", f"--training_end_date={end}", f"--sample_fraction={fraction}"]


def unmeetable_thresholds(monkeypatch) -> None:
    """Make validation fail: the headline metric must beat a value no model reaches."""
    from {{ cookiecutter.project_slug }} import model

    name = model.headline_metric()
    kept = model.THRESHOLDS[name]
    impossible = math.inf if kept.greater_is_better else -math.inf
    thresholds = {**model.THRESHOLDS, name: model.Threshold(impossible, kept.greater_is_better, kept.vs_champion)}
    monkeypatch.setattr(model, "THRESHOLDS", thresholds)


def register_on_columns(model_ref, columns: list[str], rows: int | None = None, signature: bool = True) -> str:
    """Register a version of ``model_ref`` that model.py's estimator fitted on ``columns`` of the
    training rows (the first ``rows`` of them, or all; a column the rows lack is all zeros) and
    logged with ``model.log_model``: a model of an earlier or later feature set, made without
    changing model.py's definitions. ``signature=False`` logs it without signature and input
    example, as Unity Catalog would refuse it. Returns the version."""
    import mlflow
    from mlflow.models import infer_signature

    from {{ cookiecutter.project_slug }} import model, train
    from {{ cookiecutter.project_slug }}.data import to_pandas, training_frames
    from {{ cookiecutter.project_slug }}.runtime import get_spark

    training, _ = training_frames(get_spark(), model.SOURCE_TABLE, str(bundle_date("training_end_date")), 1.0)
    frame = to_pandas(training, [*(c for c in columns if c in model.FEATURES), model.LABEL], "training")
    frame = frame.head(rows) if rows else frame
    for column in columns:
        if column not in frame:
            frame[column] = 0
    fitted = model.build_model().fit(frame[columns], frame[model.LABEL])
    example = frame[columns].head(3)
    logged = {"signature": infer_signature(example, fitted.predict(example)), "input_example": example}
    with mlflow.start_run():
        info = model.log_model(
            fitted,
            name="model",
            pip_requirements=train.pip_requirements(),
            registered_model_name=model_ref.full_name,
            **(logged if signature else {}),
        )
    return str(info.registered_model_version)


def register_small_version(model_ref, signature: bool = True) -> str:
    """A version of model.py's model trained on a few hundred rows, in seconds."""
    from {{ cookiecutter.project_slug }} import model
{%- if cookiecutter.include_feature_store %}
    from {{ cookiecutter.project_slug }}.runtime import get_spark, read_table
{%- endif %}
{% if cookiecutter.include_feature_store %}
    # The features add_features computes; the feature tables' others come from lookups (test_features.py).
    computed = model.add_features(read_table(get_spark(), model.SOURCE_TABLE).limit(0)).columns
    return register_on_columns(model_ref, [f for f in model.FEATURES if f in computed], rows=500, signature=signature)
{%- else %}
    return register_on_columns(model_ref, model.FEATURES, rows=500, signature=signature)
{%- endif %}


NUMERIC = {"double", "float", "integer", "long", "short", "decimal"}


def drifted_table(spark, name: str, source: str | None = None) -> str:
    """Write table ``name``: the rows of ``source`` (default ``model.SOURCE_TABLE``) from
    score_from_date on, of which only those with the top half of the first numeric feature.
    A shift monitoring must find, made here rather than expected of the data. Returns ``name``."""
    from pyspark.sql import functions as F

    from {{ cookiecutter.project_slug }} import model
    from {{ cookiecutter.project_slug }}.runtime import read_table, write_table

    source_rows = read_table(spark, source or model.SOURCE_TABLE)
    rows = model.add_features(source_rows).where(F.to_date(model.TIMESTAMP) >= F.lit(bundle_date("score_from_date")))
    feature = next(f.name for f in rows.schema.fields if f.name in model.FEATURES and f.dataType.typeName() in NUMERIC)
    median = rows.approxQuantile(feature, [0.5], 0.01)[0]
    write_table(rows.where(F.col(feature) > F.lit(median)).select(*source_rows.columns), name, mode="overwrite")
    return name
