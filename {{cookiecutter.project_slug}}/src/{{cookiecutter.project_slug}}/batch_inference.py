"""Batch inference: score a table with the ``champion`` and append to the inference table.

Scoring goes through ``mlflow.pyfunc.spark_udf``, so it runs on the cluster's workers.
Each row of ``<catalog>.<schema>.<model>_predictions`` keeps the row's timestamp, features
and label (when the input has one, for monitoring), the prediction, the model's full name
and version, and when it was scored. Which columns those are, and the type of a
prediction, are read from ``model.py``.
"""

from __future__ import annotations
{% if not cookiecutter.include_feature_store %}
import mlflow
{%- endif %}
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame
{%- if not cookiecutter.include_feature_store %}
from pyspark.sql import functions as F
{%- endif %}
{% if cookiecutter.include_feature_store %}
from . import feature_store, features, model, params
{%- else %}
from . import model, params
{%- endif %}
from .data import load_rows, parse_date
from .names import CHAMPION, ModelRef
from .registry import require_alias
from .runtime import configure_mlflow, get_spark, write_table


def build_parser():
    p = params.parser("batch_inference", "Score a table with the champion model.")
    params.add_model(p)
    p.add_argument("--input_table", default=model.SOURCE_TABLE)
    p.add_argument("--score_from_date", default="", help="first day to score (yyyy-mm-dd)")
    return p


def score(df: DataFrame, model_ref: ModelRef, version: str) -> DataFrame:
    """``df`` with ``prediction``, ``model_name``, ``model_version`` and ``scored_at``."""
{%- if cookiecutter.include_feature_store %}
    # fe.score_batch on the lookup keys only: the features come from this catalog's feature tables.
    return feature_store.score(features.lookup_rows(df), model_ref, version)
{%- else %}
    predict = mlflow.pyfunc.spark_udf(
        get_spark(), model_ref.uri(version), result_type=model.PREDICTION_TYPE, env_manager="local"
    )
    keep = [model.TIMESTAMP, *model.FEATURES] + ([model.LABEL] if model.LABEL in df.columns else [])
    return df.select(*keep).withColumns(
        {
            "prediction": predict(F.struct(*model.FEATURES)),
            "model_name": F.lit(model_ref.full_name),
            "model_version": F.lit(str(version)),
            "scored_at": F.current_timestamp(),
        }
    )
{%- endif %}


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    configure_mlflow()
    version = require_alias(
        MlflowClient(),
        model_ref,
        CHAMPION,
        "Run the training job (or the promotion job) in this environment first.",
    )
    spark = get_spark()
    rows = load_rows(spark, args.input_table, start=parse_date(args.score_from_date, "score_from_date"))
    scored = score(model.add_features(rows), model_ref, version).cache()
    count = scored.count()
    write_table(scored, model_ref.predictions_table, mode="append")
    scored.unpersist()
    print(
        f"Scored {count} rows of {args.input_table} with {model_ref.full_name} v{version} "
        f"into {model_ref.predictions_table}"
    )
    return count


if __name__ == "__main__":
    main()
