"""The source table as model.py defines it: its local stand-in, the dates, the features and the hold-out split.

Written against model.py's definitions, so the tests hold for whatever problem it describes.
"""

import datetime as dt
import re
import shutil

import pytest
from helpers import PROJECT_DIR, bundle_date
from mlops_local.environment import stand_in_module, table_path
from pyspark.sql import functions as F

from {{ cookiecutter.project_slug }} import model
from {{ cookiecutter.project_slug }}.data import load_rows, split_by_date, training_frames
from {{ cookiecutter.project_slug }}.runtime import JobError, write_table


def stand_in_table(spark, name):
    return stand_in_module(PROJECT_DIR).stand_in_table(spark, name)


def test_the_stand_in_has_the_source_columns_and_covers_the_bundle_dates(spark):
    """Local runs read stand_in.py's rows with the bundle's dates: days to train and hold out up
    to training_end_date, and days to score from score_from_date."""
    source = stand_in_table(spark, model.SOURCE_TABLE)
    rows = model.add_features(source)
    assert set(model.SOURCE_COLUMNS) <= set(source.columns)
{%- if cookiecutter.include_feature_store %}
    assert {"pickup_zip", *model.FEATURE_TABLES[0].features, model.LABEL} <= set(rows.columns)
{%- else %}
    assert {*model.FEATURES, model.LABEL} <= set(rows.columns)  # the label may be computed by add_features
{%- endif %}
    end, score_from = bundle_date("training_end_date"), bundle_date("score_from_date")
    day = F.to_date(model.TIMESTAMP)
    first, last = rows.agg(F.min(day), F.max(day)).first()
    assert first <= end - dt.timedelta(days=2 * model.HOLDOUT_DAYS) and last >= score_from


def test_the_metrics_name_every_threshold(spark):
    _, holdout = training_frames(spark, model.SOURCE_TABLE, str(bundle_date("training_end_date")), 1.0)
{%- if cookiecutter.include_feature_store %}
    # add_features makes the per-row features; the feature tables' are looked up (test_features.py).
    features = [f for f in model.FEATURES if f in holdout.columns]
{%- else %}
    features = model.FEATURES
{%- endif %}
    rows = holdout.select(*features, model.LABEL).toPandas()
    fitted = model.build_model().fit(rows[features], rows[model.LABEL])
    assert set(model.THRESHOLDS) <= set(model.metrics(fitted, rows[features], rows[model.LABEL]))
    assert model.mlflow_model_type() in ("regressor", "classifier")


def test_the_stand_in_is_made_on_first_read(spark, local_state):
    shutil.rmtree(table_path(local_state, model.SOURCE_TABLE), ignore_errors=True)
    rows = load_rows(spark, model.SOURCE_TABLE)
    assert rows.count() > 0
    assert set(model.SOURCE_COLUMNS) <= set(rows.columns)


def test_a_small_sample_keeps_enough_rows_for_a_hold_out(spark):
    """However small the fraction (the test target's, the quick loop's), a sample keeps
    data.MIN_SAMPLE_ROWS rows, or the whole of a smaller table: the hold-out days keep enough
    rows to validate on."""
    _, holdout = training_frames(spark, model.SOURCE_TABLE, str(bundle_date("training_end_date")), 0.01)
    assert holdout.count() >= 100


def test_missing_table_fails_with_its_name(spark):
    with pytest.raises(JobError, match="unit.nowhere.rows does not exist"):
        load_rows(spark, "unit.nowhere.rows")


def test_a_table_without_the_source_columns_is_refused_naming_them(spark):
    lacking = model.SOURCE_COLUMNS[-1]
    write_table(load_rows(spark, model.SOURCE_TABLE).limit(100).drop(lacking), "unit.ml.incomplete", mode="overwrite")
    with pytest.raises(JobError, match=re.escape(f"unit.ml.incomplete lacks the columns ['{lacking}']")):
        load_rows(spark, "unit.ml.incomplete")


def test_features_and_date_split(spark):
    rows = model.add_features(load_rows(spark, model.SOURCE_TABLE))
{%- if cookiecutter.include_feature_store %}
    looked_up = {f for table in model.FEATURE_TABLES if table.name != "trip_features" for f in table.features}
    assert {*model.FEATURES, model.LABEL} - looked_up <= set(rows.columns)
{%- else %}
    assert {*model.FEATURES, model.LABEL} <= set(rows.columns)
{%- endif %}
    end = bundle_date("training_end_date")
    cutoff = end - dt.timedelta(days=model.HOLDOUT_DAYS)
    train, holdout = split_by_date(rows, end)
    day = F.to_date(model.TIMESTAMP)
    assert train.agg(F.max(day)).first()[0] == cutoff
    assert tuple(holdout.agg(F.min(day), F.max(day)).first()) == (cutoff + dt.timedelta(days=1), end)


def test_bad_parameters_are_named(spark):
    with pytest.raises(JobError, match="training_end_date='14/02/2016'"):
        training_frames(spark, model.SOURCE_TABLE, "14/02/2016", 1.0)
    with pytest.raises(JobError, match="sample_fraction=0"):
        training_frames(spark, model.SOURCE_TABLE, str(bundle_date("training_end_date")), 0.0)
