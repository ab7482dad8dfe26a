"""The source table as model.py defines it: its local stand-in, the dates, the features and the hold-out split.

Written against model.py's definitions, so the tests hold for whatever problem it describes.
"""

import datetime as dt
import re
import shutil

import pytest
import yaml
from conftest import PROJECT_DIR
from mlops_local.environment import CACHE_DIR_ENV, table_path
from pyspark.sql import functions as F

from {{ cookiecutter.project_slug }} import model
from {{ cookiecutter.project_slug }}.data import load_rows, split_by_date, training_frames
from {{ cookiecutter.project_slug }}.runtime import JobError, write_table


def bundle_date(variable: str) -> dt.date:
    """The default of one of the bundle's date variables (databricks.yml), which local runs use too."""
    variables = yaml.safe_load((PROJECT_DIR / "databricks.yml").read_text())["variables"]
    return dt.date.fromisoformat(variables[variable]["default"])


def test_the_stand_in_has_the_source_columns_and_is_reproducible(spark):
    first = model.stand_in_table(spark, rows=2_000, seed=3)
    assert set(model.SOURCE_COLUMNS) <= set(first.columns)
    assert sorted(first.collect()) == sorted(model.stand_in_table(spark, rows=2_000, seed=3).collect())


def test_the_stand_in_spans_the_bundle_dates_and_drifts_after_training(spark):
    """Local runs use the bundle's dates: days to train and hold out up to training_end_date, days to
    score from score_from_date, and drift in those, so that monitoring has something to find."""
    monitoring = pytest.importorskip("{{ cookiecutter.project_slug }}.monitoring", reason="generated without monitoring")
    end, score_from = bundle_date("training_end_date"), bundle_date("score_from_date")
    rows = model.add_features(model.stand_in_table(spark))
    day = F.to_date(model.TIMESTAMP)
    first, last = rows.agg(F.min(day), F.max(day)).first()
    assert first <= end - dt.timedelta(days=2 * model.HOLDOUT_DAYS) and last >= score_from + dt.timedelta(days=7)
    before, after = rows.where(day <= F.lit(end)), rows.where(day >= F.lit(score_from))
    psi = monitoring.population_stability(before, after, model.FEATURES)
    assert max(psi.values()) > 0.2, psi  # monitoring's default psi_threshold


def test_the_metrics_name_every_threshold(spark):
    labels = model.add_features(model.stand_in_table(spark, rows=500)).select(model.LABEL).toPandas()[model.LABEL]
    assert set(model.THRESHOLDS) <= set(model.metrics(labels, labels))
    assert model.mlflow_model_type() in ("regressor", "classifier")


def test_the_stand_in_is_made_on_first_read(spark, local_state):
    shutil.rmtree(table_path(local_state, model.SOURCE_TABLE), ignore_errors=True)
    rows = load_rows(spark, model.SOURCE_TABLE)
    assert rows.count() > 0
    assert set(model.SOURCE_COLUMNS) <= set(rows.columns)


def test_the_stand_in_is_generated_once_then_copied_from_the_cache(spark, local_state, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))  # empty: generated here
    stand_in_table = model.stand_in_table
    monkeypatch.setattr(model, "stand_in_table", lambda spark: stand_in_table(spark, rows=500))  # the behaviour only
    table = table_path(local_state, model.SOURCE_TABLE)
    shutil.rmtree(table, ignore_errors=True)
    first = sorted(load_rows(spark, model.SOURCE_TABLE).collect())
    assert len(first) == 500 and any((tmp_path / "cache").iterdir())
    assert "Generating" in capsys.readouterr().out

    shutil.rmtree(table)  # a later run, with a fresh state
    assert sorted(load_rows(spark, model.SOURCE_TABLE).collect()) == first
    assert "Generating" not in capsys.readouterr().out
    shutil.rmtree(table)  # the next test reads the full-size table


def test_missing_table_fails_with_its_name(spark):
    with pytest.raises(JobError, match="unit.nowhere.rows does not exist"):
        load_rows(spark, "unit.nowhere.rows")


def test_a_table_without_the_source_columns_is_refused_naming_them(spark):
    lacking = model.SOURCE_COLUMNS[-1]
    write_table(model.stand_in_table(spark, rows=100).drop(lacking), "unit.ml.incomplete", mode="overwrite")
    with pytest.raises(JobError, match=re.escape(f"unit.ml.incomplete lacks the columns ['{lacking}']")):
        load_rows(spark, "unit.ml.incomplete")


def test_features_and_date_split(spark):
    rows = model.add_features(model.stand_in_table(spark, rows=3_000))
    assert {*model.FEATURES, model.LABEL} <= set(rows.columns)
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
        training_frames(spark, model.SOURCE_TABLE, "2016-02-14", 0.0)
