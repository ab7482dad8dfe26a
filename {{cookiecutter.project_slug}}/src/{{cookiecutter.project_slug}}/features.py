"""The feature transforms: source rows to feature rows, one pure Spark function per feature table.

Each function named after a table of ``model.FEATURE_TABLES`` takes rows of the source table
(``model.SOURCE_COLUMNS``) and returns that table's rows: its primary key columns (the
timestamp key included) and its features, one row per key. They read nothing but their
input, so the feature pipeline can compute any window of the source again and get the same
rows (feature_store.py merges them by primary key). Change them with the table declarations
in model.py.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from . import model


def with_trip_id(rows: DataFrame) -> DataFrame:
    """``rows`` with ``trip_id``: a trip's identity, from the source columns that make it unique.

    The sample table has no trip identifier, so one is derived; a table with its own key
    would use that column instead.
    """
    parts = [F.coalesce(F.col(c).cast("string"), F.lit("")) for c in model.SOURCE_COLUMNS]
    return rows.withColumn("trip_id", F.sha2(F.concat_ws("|", *parts), 256))


def trip_features(rows: DataFrame) -> DataFrame:
    """Per trip, at its pickup time: what is known of the trip itself."""
    return with_trip_id(model.add_features(rows)).select(
        "trip_id",
        model.TIMESTAMP,
        "trip_distance",
        "trip_minutes",
        "pickup_hour",
        "pickup_weekday",
        "dropoff_zip",
    )


def pickup_zip_features(rows: DataFrame) -> DataFrame:
    """Per pickup zip and hour: the trips picked up there in that hour, valid from its end (``window_end``).

    A trip looks up the last full hour before its pickup, so it never sees its own hour.
    """
    featured = model.add_features(rows)
    hour_end = F.date_trunc("hour", F.col(model.TIMESTAMP)) + F.expr("INTERVAL 1 HOUR")
    return (
        featured.withColumn("window_end", hour_end)
        .groupBy("pickup_zip", "window_end")
        .agg(
            F.count(F.lit(1)).cast("long").alias("pickup_zip_trips_1h"),
            F.avg("trip_distance").cast("double").alias("pickup_zip_mean_distance_1h"),
        )
    )


def lookup_rows(rows: DataFrame) -> DataFrame:
    """What a labelled or scored row carries: ``model.LOOKUP_KEYS`` (and the label when ``rows`` has it)."""
    keyed = with_trip_id(model.add_features(rows))  # the rows trip_features keeps, with the same trip_id
    label = [model.LABEL] if model.LABEL in rows.columns else []
    return keyed.select(*model.LOOKUP_KEYS, *label)
