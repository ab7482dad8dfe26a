import datetime as dt
import shutil

import pytest
from pyspark.sql import functions as F

from my_mlops_project import data, runtime
from my_mlops_project.data import (
    DRIFT_START,
    FEATURES,
    LABEL,
    PICKUP,
    SAMPLE_TABLE,
    add_features,
    generate_trips,
    load_trips,
    local_sample_key,
    split_by_date,
    training_frames,
)
from my_mlops_project.runtime import JobError

# The columns of samples.nyctaxi.trips that the project uses, with their types.
SAMPLE_SCHEMA = {
    "tpep_pickup_datetime": "timestamp",
    "tpep_dropoff_datetime": "timestamp",
    "trip_distance": "double",
    "fare_amount": "double",
    "pickup_zip": "int",
    "dropoff_zip": "int",
}


def test_generated_trips_have_the_sample_schema_and_are_reproducible(spark):
    first = generate_trips(spark, rows=2_000, seed=3)
    assert dict(first.dtypes) == SAMPLE_SCHEMA
    second = generate_trips(spark, rows=2_000, seed=3)
    assert first.orderBy(PICKUP, "trip_distance").collect() == second.orderBy(PICKUP, "trip_distance").collect()


def test_generated_trips_drift_after_the_drift_date(spark):
    trips = generate_trips(spark, rows=20_000)
    after = F.to_date(PICKUP) >= F.lit(DRIFT_START)
    before_mean = trips.where(~after).agg(F.avg("trip_distance")).first()[0]
    after_mean = trips.where(after).agg(F.avg("trip_distance")).first()[0]
    assert after_mean > 1.3 * before_mean


def test_local_sample_table_is_created_on_first_read(spark):
    shutil.rmtree(runtime._local_table_path(SAMPLE_TABLE), ignore_errors=True)
    trips = load_trips(spark, SAMPLE_TABLE)
    assert trips.count() == 30_000
    assert set(SAMPLE_SCHEMA) <= set(trips.columns)


def test_the_sample_table_is_generated_once_then_copied_from_the_cache(spark, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(runtime.CACHE_DIR_ENV, str(tmp_path / "cache"))  # empty: generated here
    monkeypatch.setattr(data, "SAMPLE_ROWS", 500)  # the behaviour, not the statistics
    shutil.rmtree(runtime._local_table_path(SAMPLE_TABLE), ignore_errors=True)
    first = sorted(load_trips(spark, SAMPLE_TABLE).collect())
    assert len(first) == 500 and (tmp_path / "cache" / local_sample_key()).is_dir()
    assert "Generating the local sample table" in capsys.readouterr().out

    shutil.rmtree(runtime._local_table_path(SAMPLE_TABLE))  # a later run, with a fresh state
    assert sorted(load_trips(spark, SAMPLE_TABLE).collect()) == first
    assert "Generating" not in capsys.readouterr().out
    shutil.rmtree(runtime._local_table_path(SAMPLE_TABLE))  # the next test reads the full-size table


def test_the_sample_cache_key_follows_the_generator_settings(monkeypatch):
    key = local_sample_key()
    monkeypatch.setattr(data, "SAMPLE_SEED", data.SAMPLE_SEED + 1)
    assert local_sample_key() != key


def test_missing_table_fails_with_its_name(spark):
    with pytest.raises(JobError, match="unit.nowhere.trips does not exist"):
        load_trips(spark, "unit.nowhere.trips")


def test_features_and_date_split(spark):
    trips = add_features(generate_trips(spark, rows=3_000))
    assert set(FEATURES + [LABEL]) <= set(trips.columns)
    assert trips.where(F.col("trip_minutes") < 0).count() == 0
    train, holdout = split_by_date(trips, dt.date(2016, 2, 14))
    assert train.agg(F.max(F.to_date(PICKUP))).first()[0] == dt.date(2016, 2, 7)
    assert holdout.agg(F.min(F.to_date(PICKUP))).first()[0] == dt.date(2016, 2, 8)
    assert holdout.agg(F.max(F.to_date(PICKUP))).first()[0] == dt.date(2016, 2, 14)


def test_bad_parameters_are_named(spark):
    with pytest.raises(JobError, match="training_end_date='14/02/2016'"):
        training_frames(spark, SAMPLE_TABLE, "14/02/2016", 1.0)
    with pytest.raises(JobError, match="sample_fraction=0"):
        training_frames(spark, SAMPLE_TABLE, "2016-02-14", 0.0)
