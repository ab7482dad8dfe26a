"""Training data: taxi trips, their features, and a local stand-in for the sample table.

On Databricks the default training table is ``samples.nyctaxi.trips``, which every Unity
Catalog workspace has (pickup/dropoff times, trip distance, fare, pickup/dropoff ZIP).
Locally, ``load_trips`` generates a seeded table with the same schema the first time it
is asked for that table, so the same parameters work everywhere. The generated table is
kept in the local cache (``runtime.cache_dir``) under a key made of the generator's code,
its settings and the Spark version, and copied from there by later runs. Feature
preparation is Spark code so it scales on a cluster.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .runtime import JobError, read_table

SAMPLE_TABLE = "samples.nyctaxi.trips"
PICKUP = "tpep_pickup_datetime"
DROPOFF = "tpep_dropoff_datetime"
LABEL = "fare_amount"
FEATURES = [
    "trip_distance",
    "trip_minutes",
    "pickup_hour",
    "pickup_weekday",
    "pickup_zip",
    "dropoff_zip",
]
HOLDOUT_DAYS = 7

# The sample table covers January and February 2016; the local one does too. From
# DRIFT_START the local trips get longer and dearer, so monitoring has drift to find.
LOCAL_START = dt.date(2016, 1, 1)
LOCAL_END = dt.date(2016, 2, 29)
DRIFT_START = dt.date(2016, 2, 15)
MANHATTAN_ZIPS = [10001, 10002, 10003, 10011, 10016, 10019, 10022, 10023, 10028, 10036, 10065, 10128]
SAMPLE_ROWS = 30_000
SAMPLE_SEED = 7


def parse_date(value: str | None, name: str) -> dt.date | None:
    """Parse an optional yyyy-mm-dd parameter, naming it in the error."""
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise JobError(f"{name}={value!r} is not a date of the form yyyy-mm-dd") from None


def generate_trips(
    spark: SparkSession,
    rows: int = SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
    start: dt.date = LOCAL_START,
    end: dt.date = LOCAL_END,
    drift_start: dt.date | None = DRIFT_START,
) -> DataFrame:
    """Trips with the schema of ``samples.nyctaxi.trips``, reproducible for a seed."""
    seconds = int((dt.datetime.combine(end, dt.time.max) - dt.datetime.combine(start, dt.time.min)).total_seconds())
    start_ts = F.lit(dt.datetime.combine(start, dt.time.min)).cast("timestamp")
    zips = F.array(*[F.lit(z) for z in MANHATTAN_ZIPS])
    n_zips = len(MANHATTAN_ZIPS)
    base = (
        spark.range(rows, numPartitions=2)
        .withColumn("pickup", (start_ts.cast("long") + (F.rand(seed) * seconds).cast("long")).cast("timestamp"))
        .withColumn(
            "drifted",
            F.lit(False) if drift_start is None else F.col("pickup") >= F.lit(drift_start).cast("timestamp"),
        )
        # Log-normal distances around 2 miles; longer trips after the drift starts.
        .withColumn("distance", F.exp(F.lit(0.6) + F.lit(0.7) * F.randn(seed + 1)))
        .withColumn("distance", F.when(F.col("drifted"), F.col("distance") * 1.6).otherwise(F.col("distance")))
        .withColumn("hour", F.hour("pickup"))
        .withColumn("rush", F.col("hour").between(7, 9) | F.col("hour").between(16, 19))
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
    return base.select(
        F.col("pickup").alias(PICKUP),
        (F.col("pickup") + F.make_interval(mins=F.col("minutes").cast("int"))).alias(DROPOFF),
        F.round("distance", 2).cast("double").alias("trip_distance"),
        F.round(F.greatest(F.col("fare"), F.lit(2.5)), 2).cast("double").alias(LABEL),
        zips[(F.rand(seed + 4) * n_zips).cast("int")].cast("int").alias("pickup_zip"),
        zips[(F.rand(seed + 5) * n_zips).cast("int")].cast("int").alias("dropoff_zip"),
    )


def load_trips(
    spark: SparkSession,
    table: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    sample_fraction: float = 1.0,
    seed: int = 42,
) -> DataFrame:
    """Trips picked up between ``start`` and ``end`` (inclusive), optionally sampled."""
    if not 0 < sample_fraction <= 1:
        raise JobError(f"sample_fraction={sample_fraction} must be in (0, 1]")
    df = read_table(spark, table)
    missing = {PICKUP, DROPOFF, "trip_distance", "pickup_zip", "dropoff_zip"} - set(df.columns)
    if missing:
        raise JobError(f"Table {table} lacks the columns {sorted(missing)} of samples.nyctaxi.trips")
    pickup_date = F.to_date(PICKUP)
    if start is not None:
        df = df.where(pickup_date >= F.lit(start))
    if end is not None:
        df = df.where(pickup_date <= F.lit(end))
    if sample_fraction < 1:
        df = df.sample(fraction=sample_fraction, seed=seed)
    return df


def add_features(df: DataFrame) -> DataFrame:
    """Model features (``FEATURES``) next to the trip's columns; the label is kept if present."""
    return (
        df.withColumn("trip_distance", F.col("trip_distance").cast("double"))
        .withColumn(
            "trip_minutes",
            ((F.col(DROPOFF).cast("long") - F.col(PICKUP).cast("long")) / 60.0).cast("double"),
        )
        .withColumn("pickup_hour", F.hour(PICKUP).cast("int"))
        .withColumn("pickup_weekday", F.dayofweek(PICKUP).cast("int"))
        .withColumn("pickup_zip", F.coalesce(F.col("pickup_zip").cast("int"), F.lit(0)))
        .withColumn("dropoff_zip", F.coalesce(F.col("dropoff_zip").cast("int"), F.lit(0)))
        .where(F.col("trip_distance").isNotNull() & (F.col("trip_minutes") >= 0))
    )


def split_by_date(df: DataFrame, end: dt.date, holdout_days: int = HOLDOUT_DAYS) -> tuple[DataFrame, DataFrame]:
    """Training rows before the last ``holdout_days`` up to ``end``, and those last days."""
    cutoff = end - dt.timedelta(days=holdout_days)
    pickup_date = F.to_date(PICKUP)
    holdout = df.where((pickup_date > F.lit(cutoff)) & (pickup_date <= F.lit(end)))
    return df.where(pickup_date <= F.lit(cutoff)), holdout


def training_frames(
    spark: SparkSession, table: str, end_date: str, sample_fraction: float
) -> tuple[DataFrame, DataFrame]:
    """Featurised training and hold-out frames of ``table`` up to ``end_date``."""
    end = parse_date(end_date, "training_end_date")
    if end is None:
        raise JobError("training_end_date is required (yyyy-mm-dd)")
    trips = add_features(load_trips(spark, table, end=end, sample_fraction=sample_fraction))
    train, holdout = split_by_date(trips, end)
    return train, holdout


def to_pandas(df: DataFrame, columns: list[str], what: str):
    """Collect ``columns`` of ``df`` to pandas, failing clearly when there are no rows."""
    pdf = df.select(*columns).toPandas()
    if pdf.empty:
        raise JobError(f"No rows for {what}: check the table and date parameters")
    return pdf
