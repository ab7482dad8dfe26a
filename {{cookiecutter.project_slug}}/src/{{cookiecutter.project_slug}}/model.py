"""The ML problem: what is predicted, from which table, by which model, judged by what.

This is the module to change when the model changes. Training, validation, batch
inference, monitoring, the quality monitor, serving and the local runs all read the
problem from here; none of them names a column, a metric or an estimator. The places
meant to be changed are marked ``Change this``; the rest follows from them.

The example predicts the fare of a New York taxi trip from its distance, duration, time
and place, on ``samples.nyctaxi.trips`` (every Unity Catalog workspace has it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

# --- The data ----------------------------------------------------------------------

# Change this: the table the jobs read by default (the bundle's training_table and
# scoring_table variables name the table per target), the columns of it that
# add_features reads, the column saying when a row happened (training ends at
# training_end_date, the last HOLDOUT_DAYS of it are held out for validation, monitoring
# compares days of it) and the column to predict.
SOURCE_TABLE = "samples.nyctaxi.trips"
SOURCE_COLUMNS = ["tpep_pickup_datetime", "tpep_dropoff_datetime", "trip_distance", "pickup_zip", "dropoff_zip"]
TIMESTAMP = "tpep_pickup_datetime"
LABEL = "fare_amount"
HOLDOUT_DAYS = 7

# Change this: the model's inputs, as add_features computes them.
FEATURES = ["trip_distance", "trip_minutes", "pickup_hour", "pickup_weekday", "pickup_zip", "dropoff_zip"]


def add_features(df: DataFrame) -> DataFrame:
    """Change this: compute ``FEATURES`` next to the source columns, dropping unusable rows.

    Spark code, so it scales on a cluster; batch inference and monitoring call it too, so
    a model is always scored on the features it was trained on.
    """
    pickup, dropoff = F.col("tpep_pickup_datetime"), F.col("tpep_dropoff_datetime")
    return (
        df.withColumn("trip_distance", F.col("trip_distance").cast("double"))
        .withColumn("trip_minutes", ((dropoff.cast("long") - pickup.cast("long")) / 60.0).cast("double"))
        .withColumn("pickup_hour", F.hour(pickup).cast("int"))
        .withColumn("pickup_weekday", F.dayofweek(pickup).cast("int"))
        .withColumn("pickup_zip", F.coalesce(F.col("pickup_zip").cast("int"), F.lit(0)))
        .withColumn("dropoff_zip", F.coalesce(F.col("dropoff_zip").cast("int"), F.lit(0)))
        .where(F.col("trip_distance").isNotNull() & (F.col("trip_minutes") >= 0))
    )


# --- The model ---------------------------------------------------------------------

# Change this: "regression" or "classification". It picks MLflow's evaluator, the quality
# monitor's analysis and the type of the predictions batch inference writes.
PROBLEM_TYPE = "regression"
PREDICTION_TYPE = "double"  # Spark type of a prediction: "double" for regression, the label's type otherwise

MODEL_PARAMS = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "random_state": 0}


def build_model():
    """Change this: an unfitted scikit-learn estimator (``fit(X, y)``, ``predict(X)``)."""
    return HistGradientBoostingRegressor(**MODEL_PARAMS)


def log_model(fitted, **options):
    """Change this with build_model: how MLflow saves the fitted model (its flavor and options).

    ``options`` are what training passes to any flavor (``name``, ``signature``,
    ``input_example``, ``pip_requirements``, ``registered_model_name``). Another library
    logs with its own flavor (``mlflow.xgboost``, ...) or ``mlflow.pyfunc.log_model(python_model=...)``.
    """
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)  # its notice about the format below
    # The format every MLflow 3 release reads (Databricks Runtime 17.3 ships 3.0).
    return mlflow.sklearn.log_model(
        fitted, serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE, **options
    )


# Change this with log_model: what loading the logged model imports, so that scoring workers
# can load it ahead of the first batch.
SCORING_IMPORTS = ("mlflow.pyfunc", "mlflow.sklearn", "sklearn.ensemble")

# Change this with the estimator: the packages the logged model needs to load and predict,
# pinned to this environment's versions when it is logged (not the project's uv.lock, which
# also holds Spark and the test tools a serving endpoint would install for nothing).
# tests/test_model_lifecycle.py compares the list with what MLflow infers for the model.
MODEL_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy")


# --- Metrics and the validation thresholds ------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A validation rule on one metric; ``vs_champion``: also no worse than the champion on the same rows."""

    value: float
    greater_is_better: bool
    vs_champion: bool = False


# Change this: the metrics validation checks, by the names MLflow's evaluator gives them for
# PROBLEM_TYPE (regression: root_mean_squared_error, mean_absolute_error, r2_score, ...;
# classification: accuracy_score, f1_score, precision_score, recall_score, ...). The first
# one is the model's headline figure in job output and the local summary.
THRESHOLDS = {
    "root_mean_squared_error": Threshold(10.0, greater_is_better=False, vs_champion=True),
    "r2_score": Threshold(0.5, greater_is_better=True),
}


def metrics(fitted, X, y_true) -> dict[str, float]:
    """Change this with THRESHOLDS: what training logs on the hold-out days (as ``holdout_<name>``).

    ``fitted`` is the trained model and ``X`` the hold-out features: a classifier's scores can
    come from ``fitted.predict_proba(X)`` (ROC AUC), its classes from ``fitted.predict(X)``.
    """
    y_pred = fitted.predict(X)
    return {
        "root_mean_squared_error": float(root_mean_squared_error(y_true, y_pred)),
        "mean_absolute_error": float(mean_absolute_error(y_true, y_pred)),
        "r2_score": float(r2_score(y_true, y_pred)),
    }


def headline_metric() -> str:
    """The first of THRESHOLDS: the figure job output leads with."""
    return next(iter(THRESHOLDS))


# What mlflow.models.evaluate calls each PROBLEM_TYPE (its ``model_type``).
MLFLOW_MODEL_TYPES = {"regression": "regressor", "classification": "classifier"}


def mlflow_model_type() -> str:
    return MLFLOW_MODEL_TYPES[PROBLEM_TYPE]


# Change this with PROBLEM_TYPE: the error monitoring compares between the recent window and
# the training data (where the scored rows have labels), as a Spark aggregate.
MONITORED_ERROR = "rmse"


def monitored_error(prediction: Column, label: Column) -> Column:
    return F.sqrt(F.avg((prediction - label) ** 2))
{%- if cookiecutter.include_feature_store %}


# --- Feature tables in Unity Catalog (include_feature_store) -----------------------
# The feature pipeline job (feature_store.py) writes these tables in the target's catalog
# and schema, <catalog>.<schema>.<name>, from the transforms in features.py; training,
# validation, batch inference and monitoring read the model's features from them through
# point-in-time lookups (databricks-feature-engineering's FeatureLookup).


@dataclass(frozen=True)
class FeatureTable:
    """A feature table: primary key (with the timestamp key last), its features, how rows find it.

    ``lookup_key``: the columns of a labelled or scored row that match the primary key without
    the timestamp key. A row gets the feature values of the latest table row whose
    ``timestamp_key`` is not after the row's ``TIMESTAMP``, never a later one.
    """

    name: str
    primary_keys: tuple[str, ...]
    timestamp_key: str
    features: tuple[str, ...]
    lookup_key: tuple[str, ...]


# Change this with features.py (one transform per table, named after it).
FEATURE_TABLES = (
    FeatureTable(
        "trip_features",
        primary_keys=("trip_id", "tpep_pickup_datetime"),
        timestamp_key="tpep_pickup_datetime",
        features=("trip_distance", "trip_minutes", "pickup_hour", "pickup_weekday", "dropoff_zip"),
        lookup_key=("trip_id",),
    ),
    FeatureTable(
        "pickup_zip_features",
        primary_keys=("pickup_zip", "window_end"),
        timestamp_key="window_end",
        features=("pickup_zip_trips_1h", "pickup_zip_mean_distance_1h"),
        lookup_key=("pickup_zip",),
    ),
)

# What a labelled or scored row carries: the lookup keys and the time the lookups are made at
# (TIMESTAMP). Batch inference and the serving endpoint get these columns only.
LOOKUP_KEYS = ["trip_id", "pickup_zip", TIMESTAMP]

# Change this with log_model: the MLflow flavor fe.log_model saves the fitted model with, and its options.
FEATURE_STORE_FLAVOR = mlflow.sklearn
FEATURE_STORE_LOG_OPTIONS = {"serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE}

# The model's inputs: the keys that are features too, then each table's features in table order
# (the order the feature-engineering client hands them to the model).
FEATURES = ["pickup_zip", *(name for table in FEATURE_TABLES for name in table.features)]
{%- endif %}
