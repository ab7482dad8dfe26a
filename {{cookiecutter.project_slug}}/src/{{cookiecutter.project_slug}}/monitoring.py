"""Monitoring: drift and error of recent predictions against the training data.

The reference is the training table up to ``training_end_date``, scored by the current
``champion``; the current window is the last ``window_days`` days of the inference
table. For every feature and for the prediction the population stability index (PSI)
compares the two, over deciles of the reference; where the inference table has labels,
the error of the window (``model.monitored_error``, named ``model.MONITORED_ERROR``) is
compared with the error on the reference's hold-out days (``model.HOLDOUT_DAYS``, which the
champion did not train on; its error on its own training rows would be too low a bar for
an overfitting model). The columns are read from ``model.py``. The
figures are appended to ``<catalog>.<schema>.<model>_monitoring`` and the task value
``retrain`` tells the job's condition task whether to retrain; ``window_end`` (the last
day monitored) is where the retraining's data ends, so the new model learns from the
drifted days. The reference ends at the champion's own ``training_end_date`` tag when it
has one (a retrained champion saw more days than the bundle's default).
Targets that cannot train (deploy models, hybrid's prod) run ``promotion.retraining_needed``
on drift instead.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import reduce

import pandas as pd
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from . import model, params
from .batch_inference import score
from .data import load_rows, parse_date, split_by_date
from .names import CHAMPION
from .registry import require_alias
from .runtime import JobError, configure_mlflow, get_spark, read_table, set_task_value, write_table

PREDICTION = "prediction"
EPSILON = 1e-4


def build_parser():
    p = params.parser("monitor", "Compare recent predictions with the training data.")
    params.add_model(p)
    p.add_argument("--training_table", default=model.SOURCE_TABLE)
    p.add_argument("--training_end_date", required=True)
    p.add_argument("--window_days", type=int, default=14, help="days of recent predictions to check")
    p.add_argument("--psi_threshold", type=float, default=0.2, help="PSI above which a column has drifted")
    p.add_argument("--max_error_increase", type=float, default=0.25, help="allowed relative error increase")
    return p


def _bucket(column: str, cuts: list[float]):
    """Index of the reference decile a value falls in (0 .. len(cuts))."""
    expr = F.lit(0)
    for cut in cuts:
        expr = expr + (F.col(column) > F.lit(cut)).cast("int")
    return expr


def _bucket_shares(
    frames: dict[str, DataFrame], cuts: dict[str, list[float]]
) -> dict[str, dict[str, dict[int, float]]]:
    """Per frame and column, the share of rows per bucket, in one pass over all ``frames``."""
    pairs = F.array(*[F.struct(F.lit(c).alias("column"), _bucket(c, cuts[c]).alias("bucket")) for c in cuts])
    buckets = [df.select(F.lit(name).alias("frame"), F.explode(pairs).alias("pair")) for name, df in frames.items()]
    rows = reduce(DataFrame.union, buckets).groupBy("frame", "pair.column", "pair.bucket").count().collect()
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["frame"], row["column"])
        totals[key] = totals.get(key, 0) + row["count"]
    shares: dict[str, dict[str, dict[int, float]]] = {name: {c: {} for c in cuts} for name in frames}
    for row in rows:
        shares[row["frame"]][row["column"]][row["bucket"]] = row["count"] / totals[(row["frame"], row["column"])]
    return shares


def population_stability(
    reference: DataFrame, current: DataFrame, columns: list[str], bins: int = 10
) -> dict[str, float]:
    """PSI of each column of ``current`` against ``reference``, over the reference's quantiles."""
    probabilities = [i / bins for i in range(1, bins)]
    quantiles = reference.approxQuantile(columns, probabilities, 0.001)
    cuts = {column: sorted(set(q)) for column, q in zip(columns, quantiles, strict=True)}
    shares = _bucket_shares({"reference": reference, "current": current}, cuts)
    result = {}
    for column in columns:
        psi = 0.0
        for bucket in range(len(cuts[column]) + 1):
            r = max(shares["reference"][column].get(bucket, 0.0), EPSILON)
            c = max(shares["current"][column].get(bucket, 0.0), EPSILON)
            psi += (c - r) * math.log(c / r)
        result[column] = psi
    return result


def error(df: DataFrame) -> float | None:
    """``model.monitored_error`` of the predictions in ``df`` that have a label; None without labels."""
    if model.LABEL not in df.columns:
        return None
    labelled = df.where(F.col(model.LABEL).isNotNull())
    row = labelled.select(model.monitored_error(F.col(PREDICTION), F.col(model.LABEL)).alias("error")).first()
    return None if row is None or row["error"] is None else float(row["error"])


@params.entry_point(build_parser)
def main(argv: list[str] | None = None) -> bool:
    args = build_parser().parse_args(argv)
    model_ref = params.model_ref(args)
    configure_mlflow()
    spark = get_spark()
    version = require_alias(MlflowClient(), model_ref, CHAMPION, "Nothing to monitor yet.")

    predictions = read_table(spark, model_ref.predictions_table)
    day = F.to_date(model.TIMESTAMP)
    last = predictions.select(F.max(day)).first()[0]
    if last is None:
        raise JobError(f"{model_ref.predictions_table} is empty: run the batch inference job first")
    window_start = last - dt.timedelta(days=args.window_days - 1)
    current = predictions.where(day >= F.lit(window_start))

    trained_to = MlflowClient().get_model_version(model_ref.full_name, version).tags.get("training_end_date")
    training_end = parse_date(trained_to or args.training_end_date, "training_end_date")
    training_rows = load_rows(spark, args.training_table, end=training_end)
    reference = score(model.add_features(training_rows), model_ref, version).cache()

    columns = [*model.FEATURES, PREDICTION]
    psi = population_stability(reference, current, columns)
    _, holdout = split_by_date(reference, training_end)
    current_error, reference_error = error(current), error(holdout)
    reference.unpersist()

    drifted = sorted(c for c, value in psi.items() if value > args.psi_threshold)
    error_ratio = current_error / reference_error if current_error and reference_error else None
    error_grew = error_ratio is not None and error_ratio > 1 + args.max_error_increase
    retrain = bool(drifted) or error_grew

    metrics = [("psi", column, value) for column, value in psi.items()]
    name = model.MONITORED_ERROR
    if current_error is not None:
        metrics += [(name, model.LABEL, current_error), (f"reference_{name}", model.LABEL, reference_error)]
    metrics.append(("retrain", "", float(retrain)))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [(now, model_ref.full_name, version, window_start, last, m, c, float(v)) for m, c, v in metrics]
    schema = (
        "monitored_at timestamp, model_name string, model_version string, window_start date, "
        "window_end date, metric string, column string, value double"
    )
    # From pandas, so Arrow carries the rows to Spark: a list of tuples would start a Python worker.
    frame = pd.DataFrame(rows, columns=[field.split()[0] for field in schema.split(", ")])
    write_table(spark.createDataFrame(frame, schema), model_ref.monitoring_table, mode="append")

    print(f"Monitoring {model_ref.full_name} v{version}, predictions {window_start} to {last}:")
    for column, value in psi.items():
        flag = "  DRIFT" if value > args.psi_threshold else ""
        print(f"  PSI {column:<15} {value:7.3f}{flag}")
    if error_ratio is not None:
        print(f"  {name} {current_error:.3f} vs {reference_error:.3f} on the hold-out days (x{error_ratio:.2f})")
    print(f"  retrain: {str(retrain).lower()}" + (f" (drift in {', '.join(drifted)})" if drifted else ""))
    set_task_value("retrain", str(retrain).lower())
    set_task_value("window_end", last.isoformat())
    return retrain


if __name__ == "__main__":
    main()
