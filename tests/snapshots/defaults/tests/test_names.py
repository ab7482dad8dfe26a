import pytest

from my_mlops_project.names import ModelRef


def test_full_name_uri_and_tables():
    model = ModelRef("prod", "ml", "fares")
    assert model.full_name == "prod.ml.fares"
    assert model.uri(3) == "models:/prod.ml.fares/3"
    assert model.uri(alias="champion") == "models:/prod.ml.fares@champion"
    assert model.predictions_table == "prod.ml.fares_predictions"
    assert model.monitoring_table == "prod.ml.fares_monitoring"


def test_parse_round_trips_and_rejects_partial_names():
    assert ModelRef.parse("dev.ml.dev_alice_fares") == ModelRef("dev", "ml", "dev_alice_fares")
    for bad in ("ml.fares", "a..b", "a.b.c.d"):
        with pytest.raises(ValueError, match="<catalog>.<schema>.<model>"):
            ModelRef.parse(bad)
