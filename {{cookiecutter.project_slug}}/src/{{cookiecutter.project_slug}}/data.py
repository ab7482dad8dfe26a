"""Training data: rows of the source table by date, their features, the hold-out split.

What the rows are (``SOURCE_COLUMNS``, ``TIMESTAMP``, ``LABEL``, ``add_features``,
``HOLDOUT_DAYS``) is read from ``model.py``; this module only selects and splits them.
Locally, ``runtime.read_table`` makes the stand-in for ``model.SOURCE_TABLE`` the first
time it is read, so the same parameters work locally and on Databricks.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import model
from .runtime import JobError, read_table


def parse_date(value: str | None, name: str) -> dt.date | None:
    """Parse an optional yyyy-mm-dd parameter, naming it in the error."""
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise JobError(f"{name}={value!r} is not a date of the form yyyy-mm-dd") from None


# The smallest sample: a sample_fraction (the test target's, the quick loop's) keeps at least
# this many rows, all of them from a smaller table, so that the hold-out days keep enough rows.
MIN_SAMPLE_ROWS = 5_000


def load_rows(
    spark: SparkSession,
    table: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    sample_fraction: float = 1.0,
    seed: int = 42,
) -> DataFrame:
    """Rows of ``table`` with ``model.TIMESTAMP`` from ``start`` to ``end`` (inclusive), optionally
    sampled (``sample_fraction``, but no fewer than ``MIN_SAMPLE_ROWS`` rows)."""
    if not 0 < sample_fraction <= 1:
        raise JobError(f"sample_fraction={sample_fraction} must be in (0, 1]")
    df = read_table(spark, table)
    missing = [c for c in model.SOURCE_COLUMNS if c not in df.columns]
    if missing:
        raise JobError(f"Table {table} lacks the columns {missing} that model.SOURCE_COLUMNS names")
    day = F.to_date(model.TIMESTAMP)
    if start is not None:
        df = df.where(day >= F.lit(start))
    if end is not None:
        df = df.where(day <= F.lit(end))
    if sample_fraction < 1:
        rows = df.count()
        fraction = max(sample_fraction, MIN_SAMPLE_ROWS / rows) if rows else 1.0
        df = df.sample(fraction=fraction, seed=seed) if fraction < 1 else df
    return df


def split_by_date(df: DataFrame, end: dt.date, holdout_days: int | None = None) -> tuple[DataFrame, DataFrame]:
    """Training rows before the last ``holdout_days`` (``model.HOLDOUT_DAYS``) up to ``end``, and those days."""
    cutoff = end - dt.timedelta(days=model.HOLDOUT_DAYS if holdout_days is None else holdout_days)
    day = F.to_date(model.TIMESTAMP)
    holdout = df.where((day > F.lit(cutoff)) & (day <= F.lit(end)))
    return df.where(day <= F.lit(cutoff)), holdout


def training_frames(
    spark: SparkSession, table: str, end_date: str, sample_fraction: float
) -> tuple[DataFrame, DataFrame]:
    """Featurised training and hold-out frames of ``table`` up to ``end_date``."""
    end = parse_date(end_date, "training_end_date")
    if end is None:
        raise JobError("training_end_date is required (yyyy-mm-dd)")
    rows = model.add_features(load_rows(spark, table, end=end, sample_fraction=sample_fraction))
    return split_by_date(rows, end)


def to_pandas(df: DataFrame, columns: list[str], what: str):
    """Collect ``columns`` of ``df`` to pandas, failing clearly when there are no rows."""
    pdf = df.select(*columns).toPandas()
    if pdf.empty:
        raise JobError(f"No rows for {what}: check the table and date parameters")
    return pdf
