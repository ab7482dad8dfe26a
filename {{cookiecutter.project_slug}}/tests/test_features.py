"""The feature tables: the pipeline, point-in-time lookups and keys-only scoring.

Locally the jobs use the stand-in for the feature-engineering client
(``mlops_local.feature_engineering``); these tests pin down the semantics both share:
a feature written after a label's timestamp is never joined to it, a re-run of a window
changes nothing, and scoring with the lookup keys only equals scoring with the joined features.
"""

import datetime as dt

import pytest
from conftest import FEATURE_CATALOG, FEATURE_SCHEMA
from pyspark.sql import functions as F

from {{ cookiecutter.project_slug }} import feature_store, features, model
from {{ cookiecutter.project_slug }}.runtime import feature_engineering, read_table


def client():
    return feature_engineering().FeatureEngineeringClient()


def test_every_declared_table_has_its_transform_and_keys(spark):
    rows = read_table(spark, model.SOURCE_TABLE).limit(200)
    for table in model.FEATURE_TABLES:
        df = getattr(features, table.name)(rows)
        assert table.timestamp_key in table.primary_keys
        assert set(table.primary_keys) | set(table.features) == set(df.columns), table.name
        assert df.count() == df.dropDuplicates(list(table.primary_keys)).count(), f"{table.name}: one row per key"
    keys = features.lookup_rows(rows)
    assert set(keys.columns) == {*model.LOOKUP_KEYS, model.LABEL}


def test_the_pipeline_creates_the_tables_with_their_keys(spark, snapshots):
    snapshots.restore("baseline")
    for table in model.FEATURE_TABLES:
        name = feature_store.table_name(FEATURE_CATALOG, FEATURE_SCHEMA, table)
        info = client().get_table(name=name)
        assert list(info.primary_keys) == list(table.primary_keys)
        assert list(info.timestamp_keys) == [table.timestamp_key]


def test_a_rerun_of_a_window_changes_nothing(spark, snapshots):
    snapshots.restore("baseline")
    names = feature_store.table_names(FEATURE_CATALOG, FEATURE_SCHEMA)
    before = {name: sorted(client().read_table(name=name).collect()) for name in names}
    window = [f"--catalog={FEATURE_CATALOG}", f"--schema={FEATURE_SCHEMA}", "--start_date=2016-01-10"]
    window.append("--end_date=2016-01-12")
    feature_store.main(window)
    feature_store.main(window)
    after = {name: sorted(client().read_table(name=name).collect()) for name in names}
    assert after == before


def test_a_feature_written_after_a_labels_timestamp_is_never_joined_to_it(spark, snapshots):
    snapshots.restore("baseline")
    zip_table = next(t for t in model.FEATURE_TABLES if t.name == "pickup_zip_features")
    name = feature_store.table_name(FEATURE_CATALOG, FEATURE_SCHEMA, zip_table)
    at = dt.datetime(2016, 1, 20, 10, 30)
    labelled = spark.createDataFrame(
        [("trip-x", 99999, at, 10.0)],
        f"trip_id string, pickup_zip int, {model.TIMESTAMP} timestamp, {model.LABEL} double",
    )
    rows = [(99999, dt.datetime(2016, 1, 20, 10, 0), 3, 1.0), (99999, dt.datetime(2016, 1, 20, 11, 0), 50, 9.0)]
    client().write_table(
        name=name,
        df=spark.createDataFrame(
            rows,
            "pickup_zip int, window_end timestamp, pickup_zip_trips_1h long, pickup_zip_mean_distance_1h double",
        ),
        mode="merge",
    )
    training = client().create_training_set(
        df=labelled, feature_lookups=feature_store.lookups(FEATURE_CATALOG, FEATURE_SCHEMA), label=model.LABEL
    )
    row = training.load_df().first()
    assert row["pickup_zip_trips_1h"] == 3  # the 10:00 window, not the 11:00 one written after 10:30


@pytest.mark.slow
def test_scoring_with_keys_only_equals_scoring_with_the_joined_features(spark, champion):
    model_ref, version = champion
    rows = read_table(spark, model.SOURCE_TABLE).where(F.to_date(model.TIMESTAMP) == F.lit("2016-01-20"))
    keys = features.lookup_rows(rows).drop(model.LABEL)
    with_features = (
        client()
        .create_training_set(
            df=keys, feature_lookups=feature_store.lookups(model_ref.catalog, model_ref.schema), label=None
        )
        .load_df()
    )
    uri = model_ref.uri(version)
    by_keys = client().score_batch(model_uri=uri, df=keys).select("trip_id", "prediction")
    by_features = client().score_batch(model_uri=uri, df=with_features).select("trip_id", "prediction")
    assert by_keys.count() > 0
    assert sorted(by_keys.collect()) == sorted(by_features.collect())


@pytest.mark.slow
def test_the_model_carries_the_feature_tables_of_its_catalog(champion):
    model_ref, version = champion
    assert feature_store.feature_tables_read(model_ref.uri(version)) == sorted(
        feature_store.table_names(model_ref.catalog, model_ref.schema)
    )
{%- if cookiecutter.deployment_pattern != 'deploy_code' %}


@pytest.mark.slow
def test_a_promoted_model_scores_from_the_destination_catalogs_tables(spark, champion, snapshots):
    """Promotion logs the fitted model again with the destination's tables: changing the source's
    features changes nothing for the copy."""
    from helpers import data_args, model_args

    from {{ cookiecutter.project_slug }} import promotion
    from {{ cookiecutter.project_slug }}.names import ModelRef

    source, version = champion
    destination = ModelRef("prodlike", source.schema, source.name)
    feature_store.main([f"--catalog={destination.catalog}", f"--schema={destination.schema}"])
    copied = promotion.copy_model(
        [f"--source_model={source.full_name}", f"--source_version={version}", *model_args(destination), *data_args()]
    )
    tables = feature_store.feature_tables_read(destination.uri(copied))
    assert tables == sorted(feature_store.table_names(destination.catalog, destination.schema))
    rows = read_table(spark, model.SOURCE_TABLE).where(F.to_date(model.TIMESTAMP) == F.lit("2016-01-20"))
    keys = features.lookup_rows(rows).drop(model.LABEL)
    before = client().score_batch(model_uri=destination.uri(copied), df=keys).select("trip_id", "prediction")
    before = sorted(before.collect())
    # Blank the source catalog's trip features: the promoted model must not notice.
    trip = feature_store.table_name(source.catalog, source.schema, model.FEATURE_TABLES[0])
    blanked = client().read_table(name=trip).withColumn("trip_distance", F.lit(0.0))
    client().write_table(name=trip, df=blanked, mode="merge")
    after = client().score_batch(model_uri=destination.uri(copied), df=keys).select("trip_id", "prediction")
    after = sorted(after.collect())
    assert after == before
    source_after = client().score_batch(model_uri=source.uri(version), df=keys).select("trip_id", "prediction")
    assert sorted(source_after.collect()) != before  # the source model does read the source tables
{%- endif %}
{%- if cookiecutter.include_serving_endpoint %}


# --- The online store the serving endpoint looks features up in ---------------------------

ONLINE_STORE = "unit-features"


def online_rows(spark, table) -> list:
    online = feature_store.online_table_name(feature_store.table_name(FEATURE_CATALOG, FEATURE_SCHEMA, table))
    return sorted(read_table(spark, online).collect())


def test_publishing_copies_the_latest_row_of_each_key_and_follows_the_merges(spark, snapshots):
    snapshots.restore("baseline")
    zip_table = next(t for t in model.FEATURE_TABLES if t.name == "pickup_zip_features")
    name = feature_store.table_name(FEATURE_CATALOG, FEATURE_SCHEMA, zip_table)
    published = feature_store.publish(FEATURE_CATALOG, FEATURE_SCHEMA, ONLINE_STORE)
    assert published[name] == f"{name}_online"
    offline = client().read_table(name=name)
    latest = offline.groupBy("pickup_zip").agg(F.max("window_end").alias("window_end"))
    expected = sorted(offline.join(latest, ["pickup_zip", "window_end"]).select(*offline.columns).collect())
    assert online_rows(spark, zip_table) == expected  # one row per zip: its latest window
    # A later window merged into the feature table reaches the online table at the next publish.
    newest = offline.join(latest, ["pickup_zip", "window_end"]).limit(1)
    later = newest.withColumn("window_end", F.col("window_end") + F.expr("INTERVAL 1 HOUR"))
    later = later.withColumn("pickup_zip_trips_1h", F.lit(12345).cast("long")).select(*offline.columns)
    later = spark.createDataFrame(later.collect(), later.schema)  # not a plan over the files merged below
    zip_code = later.first()["pickup_zip"]
    client().write_table(name=name, df=later, mode="merge")
    feature_store.publish(FEATURE_CATALOG, FEATURE_SCHEMA, ONLINE_STORE)  # the store exists: reused
    assert [r["pickup_zip_trips_1h"] for r in online_rows(spark, zip_table) if r["pickup_zip"] == zip_code] == [12345]


def test_publishing_needs_change_data_feed(spark, snapshots):
    snapshots.restore("baseline")
    fe = client()
    store = fe.get_online_store(name=ONLINE_STORE) or fe.create_online_store(name=ONLINE_STORE, capacity="CU_1")
    name = feature_store.table_names(FEATURE_CATALOG, FEATURE_SCHEMA)[0]
    with pytest.raises(ValueError, match="Change Data Feed"):
        fe.publish_table(online_store=store, source_table_name=name, online_table_name=f"{name}_online")


@pytest.mark.slow
def test_a_request_with_the_lookup_keys_only_is_scored_from_the_online_store(spark, champion, monkeypatch):
    """What the serving endpoint does (automatic feature lookup): a request carrying only the lookup
    keys is scored with the features of the online tables, as the same rows with those features."""
    import mlflow
    from mlops_local.feature_engineering import SERVING_ENV

    model_ref, version = champion
    monkeypatch.setenv(SERVING_ENV, "1")
    served = mlflow.pyfunc.load_model(model_ref.uri(version))
    day = F.to_date(model.TIMESTAMP) == F.lit("2016-01-20")
    rows = read_table(spark, model.SOURCE_TABLE).where(day).limit(50)
    keys = features.lookup_rows(rows).drop(model.LABEL)
    with pytest.raises(ValueError, match="not published to an online store"):
        served.predict(keys.toPandas())
    feature_store.publish(model_ref.catalog, model_ref.schema, ONLINE_STORE)
    joined = keys
    for table in model.FEATURE_TABLES:  # each feature table's online copy, joined by its lookup key
        offline = feature_store.table_name(model_ref.catalog, model_ref.schema, table)
        online = read_table(spark, feature_store.online_table_name(offline))
        key_columns = [k for k in table.primary_keys if k != table.timestamp_key]
        renamed = online.select(
            *[F.col(k).alias(lookup) for k, lookup in zip(key_columns, table.lookup_key, strict=True)],
            *table.features,
        )
        joined = joined.join(renamed, list(table.lookup_key), "left")
    keys_only = keys.orderBy("trip_id").toPandas()
    with_features = joined.orderBy("trip_id").toPandas()
    by_keys = served.predict(keys_only)["prediction"].tolist()  # a prediction column, as the client's model
    by_features = served.predict(with_features)["prediction"].tolist()
    assert len(by_keys) == keys.count() > 0
    assert by_keys == by_features
{%- endif %}
