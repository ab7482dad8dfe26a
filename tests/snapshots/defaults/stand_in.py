"""Local stand-in rows for the source table, for runs on this machine (development only).

Not in the job wheel. When a local job reads a table that the local state does not have,
the local runner (``python -m mlops_local``, the tests) calls ``stand_in_table(spark, name)``
from this file and keeps what it returns as that table (made once per machine and cached
under a key made of this file). ``None`` means there is no stand-in for that table, and the
job fails naming it. On Databricks the jobs read the real tables.

Change this with ``model.SOURCE_TABLE``: rows with the columns ``model.SOURCE_COLUMNS`` and
``model.LABEL`` name, over the days of the bundle's date variables (``training_end_date``,
``score_from_date``).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from my_mlops_project import model


def stand_in_table(spark: SparkSession, name: str) -> DataFrame | None:
    """The stand-in for table ``name``: any ``<catalog>.<schema>.<table>`` named like
    ``model.SOURCE_TABLE``'s table, so that each target may read its own copy."""
    if name.rsplit(".", 1)[-1] != model.SOURCE_TABLE.rsplit(".", 1)[-1]:
        return None
    return trips(spark)


# The sample table covers January and February 2016, and so does the stand-in. From
# DRIFT_START its trips get longer and dearer, so that monitoring has drift to find.
STAND_IN_START = dt.date(2016, 1, 1)
STAND_IN_END = dt.date(2016, 2, 29)
DRIFT_START = dt.date(2016, 2, 15)
MANHATTAN_ZIPS = [10001, 10002, 10003, 10011, 10016, 10019, 10022, 10023, 10028, 10036, 10065, 10128]


def trips(spark: SparkSession, rows: int = 30_000, seed: int = 7) -> DataFrame:
    """Seeded taxi trips with the columns of ``samples.nyctaxi.trips`` that model.py reads."""
    start = dt.datetime.combine(STAND_IN_START, dt.time.min)
    seconds = int((dt.datetime.combine(STAND_IN_END, dt.time.max) - start).total_seconds())
    zips = F.array(*[F.lit(z) for z in MANHATTAN_ZIPS])
    trips = (
        spark.range(rows, numPartitions=2)
        .withColumn("pickup", (F.lit(start).cast("timestamp").cast("long") + (F.rand(seed) * seconds).cast("long")))
        .withColumn("pickup", F.col("pickup").cast("timestamp"))
        .withColumn("drifted", F.col("pickup") >= F.lit(DRIFT_START).cast("timestamp"))
        # Log-normal distances around 2 miles; longer trips after the drift starts.
        .withColumn("distance", F.exp(F.lit(0.6) + F.lit(0.7) * F.randn(seed + 1)))
        .withColumn("distance", F.when(F.col("drifted"), F.col("distance") * 1.6).otherwise(F.col("distance")))
        .withColumn("rush", F.hour("pickup").between(7, 9) | F.hour("pickup").between(16, 19))
        .withColumn("speed_mph", F.when(F.col("rush"), 8.0).otherwise(13.0) + F.randn(seed + 2))
        .withColumn("minutes", F.col("distance") / F.greatest(F.col("speed_mph"), F.lit(3.0)) * 60 + 2)
        .withColumn(
            "fare",
            2.5
            + 1.6 * F.col("distance")
            + 0.35 * F.col("minutes")
            + F.when(F.col("rush"), 1.0).otherwise(0.0)
            + F.when(F.col("drifted"), 3.0).otherwise(0.0)
            + 0.8 * F.randn(seed + 3),
        )
    )
    return trips.select(
        F.col("pickup").alias("tpep_pickup_datetime"),
        (F.col("pickup") + F.make_interval(mins=F.col("minutes").cast("int"))).alias("tpep_dropoff_datetime"),
        F.round("distance", 2).cast("double").alias("trip_distance"),
        F.round(F.greatest(F.col("fare"), F.lit(2.5)), 2).cast("double").alias("fare_amount"),
        zips[(F.rand(seed + 4) * len(MANHATTAN_ZIPS)).cast("int")].cast("int").alias("pickup_zip"),
        zips[(F.rand(seed + 5) * len(MANHATTAN_ZIPS)).cast("int")].cast("int").alias("dropoff_zip"),
    )
